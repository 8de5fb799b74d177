"""Fixtures: the real swin-serve binary on a free loopback port, swin.v1 stubs, test images.

SWIN_SERVE_BIN             the binary (default target/debug/swin-serve, relative to the repository root)
SWIN_OIP_STARTUP_TIMEOUT   seconds to wait for ServerReady (default 180)
SWIN_OIP_CLIENT            which client's tests this process runs: "triton" (default) or "kserve".
                           tritonclient and kserve each register the `inference.*` messages in
                           protobuf's default descriptor pool (from differently named .proto files),
                           so importing both in one process fails ("duplicate symbol
                           'inference.ServerLiveRequest'"); run.sh runs one process per client.
                           Nothing in this file imports either client.
"""

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest

import oip_helpers as H

CLIENT = os.environ.get("SWIN_OIP_CLIENT", "triton")
if CLIENT == "kserve":
    collect_ignore = ["test_tritonclient.py", "test_reference_preprocess.py", "test_tritonclient_http.py", "test_browser.py"]
elif CLIENT == "triton":
    collect_ignore = ["test_kserve.py"]
else:
    raise pytest.UsageError(f"SWIN_OIP_CLIENT must be triton or kserve, not {CLIENT!r}")

REPO = H.REPO

# The main server's flags (ModelConfig is checked against them).
MAIN_INSTANCES = 2
MAIN_THREADS = 1
MAIN_MAX_BATCH = 4
MAIN_MAX_BATCH_IMAGES = 64

# The second server: bearer-token auth, a custom OIP model name, a small max_batch_size.
AUTH_TOKEN = "oip-test-token-3f9a"
AUTH_MODEL_NAME = "swin-oip-auth"
AUTH_MAX_BATCH_IMAGES = 2

GRPC_OPTIONS = [
    ("grpc.max_send_message_length", 64 << 20),
    ("grpc.max_receive_message_length", 64 << 20),
]


def server_binary():
    p = Path(os.environ.get("SWIN_SERVE_BIN", "target/debug/swin-serve"))
    if not p.is_absolute():
        p = REPO / p
    return p


def _die_with_parent():
    """Linux: SIGTERM the server if pytest itself dies (killed by a CI timeout, say)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclasses.dataclass
class Server:
    proc: subprocess.Popen
    url: str
    log_path: Path
    args: list
    headers: dict
    http_url: str = ""

    def log_tail(self, n=40):
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no log)"
        return "\n".join(lines[-n:])

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def start_server(log_dir, label, extra_args, headers=None):
    """Start the binary on a free port and wait for ServerReady."""
    binary = server_binary()
    if not binary.is_file():
        pytest.fail(
            f"server binary {binary} not found: build it (cargo build) or set SWIN_SERVE_BIN",
            pytrace=False,
        )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWIN_SERVE_")}
    env.setdefault("RUST_LOG", "info")
    deadline_s = float(os.environ.get("SWIN_OIP_STARTUP_TIMEOUT", "180"))
    last_error = ""
    for attempt in range(3):
        port = _free_port()
        url = f"127.0.0.1:{port}"
        http_url = f"127.0.0.1:{_free_port()}"
        args = [str(binary), "serve", "--random-weights", "0", "--listen", url, "--http-listen", http_url, *extra_args]
        log_path = Path(log_dir) / f"{label}-{attempt}.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen(
            args,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            preexec_fn=_die_with_parent,
        )
        log.close()
        server = Server(proc, url, log_path, args, headers or {}, http_url)
        channel = grpc.insecure_channel(url)
        # ServerReady with hand-made bytes: the request is empty, the answer `bool ready = 1`.
        ready_rpc = channel.unary_unary("/inference.GRPCInferenceService/ServerReady")
        metadata = tuple((headers or {}).items())
        start = time.monotonic()
        try:
            while time.monotonic() - start < deadline_s:
                if proc.poll() is not None:
                    break
                try:
                    if ready_rpc(b"", timeout=2, metadata=metadata) == b"\x08\x01":
                        return server
                    last_error = "ServerReady: ready = false"
                except grpc.RpcError as e:
                    last_error = f"{e.code()}: {e.details()}"
                time.sleep(0.2)
        finally:
            channel.close()
        tail = server.log_tail()
        exited = proc.poll()
        server.stop()
        if exited is not None and "in use" in tail.lower():
            continue  # the port was taken between choosing and binding it: try another
        if exited is not None and exited < 0 and "swin_serve" not in tail:
            # Killed by a signal before the binary wrote a line: the forked child died before exec
            # (grpcio's fork handlers in this process abort it now and then: "epoll_wait error:
            # Bad file descriptor"), so the server never ran. Start it again.
            last_error = f"the child exited with {exited} before the server started"
            continue
        break
    pytest.fail(
        f"{label} server did not become ready ({' '.join(args)}); last error {last_error!r}; "
        f"{'exited with ' + str(exited) if exited is not None else 'still running, stopped'}; "
        f"log:\n{tail}",
        pytrace=False,
    )


@pytest.fixture(scope="session")
def log_dir():
    keep = os.environ.get("SWIN_OIP_LOG_DIR")
    if keep:
        Path(keep).mkdir(parents=True, exist_ok=True)
        yield Path(keep)
    else:
        with tempfile.TemporaryDirectory(prefix="swin-oip-") as d:
            yield Path(d)


@pytest.fixture(scope="session")
def server(log_dir):
    s = start_server(
        log_dir,
        "main",
        [
            "--instances", str(MAIN_INSTANCES),
            "--threads", str(MAIN_THREADS),
            "--max-batch", str(MAIN_MAX_BATCH),
            "--max-batch-images", str(MAIN_MAX_BATCH_IMAGES),
        ],
    )
    yield s
    s.stop()
    # A clean shutdown: the process exits by itself after SIGTERM.
    assert s.proc.returncode == 0, f"server exited with {s.proc.returncode}:\n{s.log_tail()}"


@pytest.fixture(scope="session")
def small_server(log_dir):
    """A 64x64 SwinV2 (window 4, random weights): the HTTP and browser tests' server, fast enough
    in a debug build (about 1 s an image, against 13 s at 256x256)."""
    s = start_server(log_dir, "small", ["--img-size", "64", "--window-size", "4", "--threads", "1"])
    yield s
    s.stop()


@pytest.fixture(scope="session")
def auth_server(log_dir, tmp_path_factory):
    token_file = tmp_path_factory.mktemp("auth") / "tokens"
    token_file.write_text(f"# test tokens\n{AUTH_TOKEN}\n")
    s = start_server(
        log_dir,
        "auth",
        [
            "--auth-token-file", str(token_file),
            "--model-name", AUTH_MODEL_NAME,
            "--max-batch-images", str(AUTH_MAX_BATCH_IMAGES),
            "--threads", "1",
        ],
        headers={"authorization": f"Bearer {AUTH_TOKEN}"},
    )
    yield s
    s.stop()


@pytest.fixture(scope="session")
def swin_v1(server, tmp_path_factory):
    """swin.v1 stubs compiled from proto/ with grpcio-tools, and a stub on the main server."""
    out = tmp_path_factory.mktemp("swin_v1_pb")
    from grpc_tools import protoc

    rc = protoc.main(
        [
            "protoc",
            f"-I{REPO / 'proto'}",
            f"--python_out={out}",
            f"--grpc_python_out={out}",
            "swin/v1/classifier.proto",
        ]
    )
    assert rc == 0, "protoc failed on proto/swin/v1/classifier.proto"
    sys.path.insert(0, str(out))
    from swin.v1 import classifier_pb2, classifier_pb2_grpc

    channel = grpc.insecure_channel(server.url, options=GRPC_OPTIONS)
    stub = classifier_pb2_grpc.ClassifierStub(channel)
    yield classifier_pb2, stub
    channel.close()


@dataclasses.dataclass
class ModelFacts:
    """What the test expects of the model, from sources other than the OIP service."""

    name: str
    size: int  # S
    classes: int  # C
    labels: list
    version: str


@pytest.fixture(scope="session")
def model(swin_v1):
    pb, stub = swin_v1
    info = stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    labels = (REPO / "models" / "imagenet_labels.txt").read_text().splitlines()
    assert info.num_classes == len(labels) == 1000
    return ModelFacts(
        name=info.model,
        size=info.input_size,
        classes=info.num_classes,
        labels=labels,
        version="1",
    )


@pytest.fixture(scope="session")
def images():
    return H.make_images()


@pytest.fixture(scope="session")
def tensors(model, images):
    """name -> the test's own preprocessing of that image, float32 [3, S, S]."""
    return {name: H.preprocess(blob, model.size) for name, blob in images.items()}
