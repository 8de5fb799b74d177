"""Fixtures: the real swin-serve binary on a free loopback port, clients, test images and the
per-image reference answers.

SWIN_SERVE_BIN   the binary (default target/debug/swin-serve, relative to the repository root)
SWIN_OIP_STARTUP_TIMEOUT   seconds to wait for ServerReady (default 180)
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
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2_grpc
from tritonclient.utils import InferenceServerException

import oip_helpers as H

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
    """Start the binary on a free port and wait for ServerReady (through tritonclient)."""
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
        args = [str(binary), "serve", "--random-weights", "0", "--listen", url, *extra_args]
        log_path = Path(log_dir) / f"{label}-{attempt}.log"
        log = open(log_path, "wb")
        proc = subprocess.Popen(
            args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env
        )
        log.close()
        server = Server(proc, url, log_path, args, headers or {})
        client = triton.InferenceServerClient(url)
        start = time.monotonic()
        try:
            while time.monotonic() - start < deadline_s:
                if proc.poll() is not None:
                    break
                try:
                    if client.is_server_ready(headers=headers, client_timeout=2):
                        return server
                except InferenceServerException as e:
                    last_error = f"{e.status()}: {e.message()}"
                time.sleep(0.2)
        finally:
            client.close()
        tail = server.log_tail()
        server.stop()
        if "in use" in tail.lower():
            continue  # the port was taken between choosing and binding it: try another
        break
    pytest.fail(
        f"{label} server did not become ready ({' '.join(args)}); last error {last_error!r}; "
        f"exit code {proc.returncode}; log:\n{tail}",
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
def client(server):
    c = triton.InferenceServerClient(server.url)
    yield c
    c.close()


@pytest.fixture(scope="session")
def raw_stub(server):
    """tritonclient's own generated stub, for requests its high-level API cannot express."""
    channel = grpc.insecure_channel(server.url, options=GRPC_OPTIONS)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


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


def infer_images(client, model_name, blobs, outputs=None, **kw):
    inp = triton.InferInput("IMAGE", [len(blobs)], "BYTES")
    inp.set_data_from_numpy(H.bytes_tensor(blobs))
    return client.infer(model_name, [inp], outputs=outputs, client_timeout=120, **kw)


def infer_tensor(client, model_name, batch, outputs=None, **kw):
    inp = triton.InferInput("INPUT", list(batch.shape), "FP32")
    inp.set_data_from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    return client.infer(model_name, [inp], outputs=outputs, client_timeout=120, **kw)


@pytest.fixture(scope="session")
def reference(client, model, images):
    """name -> (logits [C] float32, probabilities [C] float32): one IMAGE request per image."""
    ref = {}
    for name, blob in images.items():
        r = infer_images(client, model.name, [blob])
        logits = r.as_numpy("LOGITS")
        probs = r.as_numpy("PROBABILITIES")
        assert logits.shape == (1, model.classes), (name, logits.shape)
        assert probs.shape == (1, model.classes), (name, probs.shape)
        assert logits.dtype == np.float32 and probs.dtype == np.float32
        ref[name] = (logits[0].copy(), probs[0].copy())
    return ref


@pytest.fixture(scope="session")
def tensors(model, images):
    """name -> the test's own preprocessing of that image, float32 [3, S, S]."""
    return {name: H.preprocess(blob, model.size) for name, blob in images.items()}
