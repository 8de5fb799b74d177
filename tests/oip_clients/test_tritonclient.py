"""The Open Inference Protocol v2 service (inference.GRPCInferenceService) through Triton's own
Python client, tritonclient[grpc], against the real binary.

Expectations come from outside the OIP service: the model's name, input size and class count
from swin.v1 GetModelInfo, labels from models/imagenet_labels.txt, the crate version from
Cargo.toml, preprocessing from Pillow + numpy (oip_helpers.preprocess), softmax from numpy."""

import queue
import threading
import time
import tomllib
from concurrent.futures import ThreadPoolExecutor

import grpc
import numpy as np
import pytest
import tritonclient.grpc as triton
from tritonclient.grpc import service_pb2
from tritonclient.grpc import model_config_pb2 as mc
from tritonclient.utils import InferenceServerException

import oip_helpers as H
from conftest import (
    AUTH_MAX_BATCH_IMAGES,
    AUTH_MODEL_NAME,
    AUTH_TOKEN,
    GRPC_OPTIONS,
    MAIN_INSTANCES,
    MAIN_MAX_BATCH,
    MAIN_MAX_BATCH_IMAGES,
    REPO,
)
from tritonclient.grpc import service_pb2_grpc

# INPUT (the test's preprocessing) vs IMAGE (the server's): the server's preprocessing is
# Pillow-exact, so only float rounding and batch composition differ.
LOGIT_ATOL = 1e-4


@pytest.fixture(scope="module")
def client(server):
    c = triton.InferenceServerClient(server.url)
    yield c
    c.close()


@pytest.fixture(scope="module")
def raw_stub(server):
    """tritonclient's own generated stub, for requests its high-level API cannot express."""
    channel = grpc.insecure_channel(server.url, options=GRPC_OPTIONS)
    yield service_pb2_grpc.GRPCInferenceServiceStub(channel)
    channel.close()


def infer_images(client, model_name, blobs, outputs=None, **kw):
    inp = triton.InferInput("IMAGE", [len(blobs)], "BYTES")
    inp.set_data_from_numpy(H.bytes_tensor(blobs))
    return client.infer(model_name, [inp], outputs=outputs, client_timeout=120, **kw)


def infer_tensor(client, model_name, batch, outputs=None, **kw):
    inp = triton.InferInput("INPUT", list(batch.shape), "FP32")
    inp.set_data_from_numpy(np.ascontiguousarray(batch, dtype=np.float32))
    return client.infer(model_name, [inp], outputs=outputs, client_timeout=120, **kw)


@pytest.fixture(scope="module")
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


def expect_error(status, needles, fn, *args, **kw):
    with pytest.raises(InferenceServerException) as info:
        fn(*args, **kw)
    e = info.value
    assert e.status() == f"StatusCode.{status}", (
        f"expected {status}, got {e.status()}: {e.message()}"
    )
    msg = (e.message() or "").lower()
    for n in needles:
        assert n.lower() in msg, f"message {e.message()!r} does not mention {n!r}"
    return e


def close(a, b, atol=LOGIT_ATOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = float(np.max(np.abs(a.astype(np.float64) - b.astype(np.float64))))
    assert diff <= atol, f"max |diff| {diff} > {atol}"


# --- health and metadata ------------------------------------------------------------------


def test_live_and_ready(client, model):
    assert client.is_server_live() is True
    assert client.is_server_ready() is True
    assert client.is_model_ready(model.name) is True
    assert client.is_model_ready(model.name, "1") is True


def test_model_ready_unknown_model_or_version_is_not_found(client, model):
    expect_error("NOT_FOUND", ["no-such-model"], client.is_model_ready, "no-such-model")
    expect_error("NOT_FOUND", [], client.is_model_ready, model.name, "2")


def test_server_metadata(client):
    md = client.get_server_metadata()
    cargo = tomllib.loads((REPO / "Cargo.toml").read_text())
    assert md.name == "swin-serve"
    assert md.version == cargo["package"]["version"]
    assert {"classification", "model_configuration", "statistics"} <= set(md.extensions)
    as_json = client.get_server_metadata(as_json=True)
    assert "classification" in as_json["extensions"]


def test_model_metadata(client, model):
    S, C = model.size, model.classes
    for version in ("", "1"):
        md = client.get_model_metadata(model.name, version)
        assert md.name == model.name
        assert list(md.versions) == ["1"]
        assert md.platform in ("swin-serve_cpu", "swin-serve_mlu")
        inputs = {t.name: (t.datatype, list(t.shape)) for t in md.inputs}
        assert inputs == {"IMAGE": ("BYTES", [-1]), "INPUT": ("FP32", [-1, 3, S, S])}
        outputs = [(t.name, t.datatype, list(t.shape)) for t in md.outputs]
        assert outputs == [("LOGITS", "FP32", [-1, C]), ("PROBABILITIES", "FP32", [-1, C])]


def test_model_metadata_unknown_is_not_found(client, model):
    expect_error("NOT_FOUND", ["nope-model"], client.get_model_metadata, "nope-model")
    expect_error("NOT_FOUND", [], client.get_model_metadata, model.name, "3")


def test_model_config(client, model):
    S, C = model.size, model.classes
    cfg = client.get_model_config(model.name).config
    assert cfg.name == model.name
    assert cfg.platform in ("swin-serve_cpu", "swin-serve_mlu")
    assert cfg.backend == "swin-serve"
    assert cfg.max_batch_size == MAIN_MAX_BATCH_IMAGES
    ins = {i.name: i for i in cfg.input}
    assert set(ins) == {"IMAGE", "INPUT"}
    assert ins["IMAGE"].data_type == mc.TYPE_STRING
    assert list(ins["IMAGE"].dims) == [1]
    assert ins["IMAGE"].HasField("reshape") and list(ins["IMAGE"].reshape.shape) == []
    assert ins["IMAGE"].optional is True
    assert ins["INPUT"].data_type == mc.TYPE_FP32
    assert ins["INPUT"].format == mc.ModelInput.FORMAT_NCHW
    assert list(ins["INPUT"].dims) == [3, S, S]
    assert ins["INPUT"].optional is True
    outs = [(o.name, o.data_type, list(o.dims)) for o in cfg.output]
    assert outs == [("LOGITS", mc.TYPE_FP32, [C]), ("PROBABILITIES", mc.TYPE_FP32, [C])]
    assert list(cfg.dynamic_batching.preferred_batch_size) == [MAIN_MAX_BATCH]
    assert cfg.dynamic_batching.max_queue_delay_microseconds == 0
    assert len(cfg.instance_group) == 1
    assert cfg.instance_group[0].count == MAIN_INSTANCES
    assert cfg.instance_group[0].kind == mc.ModelInstanceGroup.KIND_CPU
    expect_error("NOT_FOUND", ["nope-model"], client.get_model_config, "nope-model")


def test_repository_index(client, model):
    idx = client.get_model_repository_index()
    entries = [m for m in idx.models if m.name == model.name]
    assert len(entries) == 1, idx
    assert entries[0].version in ("", "1")
    assert entries[0].state == "READY"


@pytest.mark.parametrize(
    "call",
    [
        lambda c, m: c.load_model(m.name),
        lambda c, m: c.unload_model(m.name),
        lambda c, m: c.get_system_shared_memory_status(),
        lambda c, m: c.register_system_shared_memory("r", "/swin-oip-none", 16),
        lambda c, m: c.get_cuda_shared_memory_status(),
        lambda c, m: c.get_trace_settings(),
        lambda c, m: c.get_log_settings(),
    ],
    ids=["load", "unload", "sysshm_status", "sysshm_register", "cudashm", "trace", "log"],
)
def test_unimplemented_rpcs(client, model, call):
    expect_error("UNIMPLEMENTED", [], call, client, model)


# --- inference: numbers ---------------------------------------------------------------------


def test_probabilities_are_softmax_of_logits(reference):
    for name, (logits, probs) in reference.items():
        np.testing.assert_allclose(probs, H.softmax(logits), rtol=1e-5, atol=1e-9, err_msg=name)
        assert abs(float(probs.astype(np.float64).sum()) - 1.0) < 1e-4, name


def test_input_tensor_matches_image(client, model, reference, tensors):
    """INPUT preprocessed here (Pillow + numpy) == IMAGE preprocessed by the server, per image:
    JPEG and PNG, greyscale, RGBA, odd aspect ratios, smaller than the crop, real photos."""
    names = list(tensors)
    batch = np.stack([tensors[n] for n in names])
    r = infer_tensor(client, model.name, batch)
    logits, probs = r.as_numpy("LOGITS"), r.as_numpy("PROBABILITIES")
    assert logits.shape == (len(names), model.classes)
    assert probs.shape == (len(names), model.classes)
    for i, n in enumerate(names):
        diff = float(np.max(np.abs(logits[i] - reference[n][0])))
        assert diff <= LOGIT_ATOL, f"{n}: INPUT vs IMAGE logits max |diff| {diff}"
        np.testing.assert_allclose(probs[i], H.softmax(logits[i]), rtol=1e-5, atol=1e-9)
    # The images are different, and so are their answers (the model is not constant).
    assert not np.allclose(logits[0], logits[1], atol=1e-3)


def test_image_batch_rows_equal_single_answers(client, model, images, reference):
    names = list(images)
    r = infer_images(client, model.name, [images[n] for n in names])
    logits, probs = r.as_numpy("LOGITS"), r.as_numpy("PROBABILITIES")
    assert logits.shape == (len(names), model.classes)
    for i, n in enumerate(names):
        close(logits[i], reference[n][0])
        close(probs[i], reference[n][1], atol=1e-5)


def test_image_shape_n_by_1(client, model, images, reference):
    names = list(images)[:2]
    inp = triton.InferInput("IMAGE", [2, 1], "BYTES")
    inp.set_data_from_numpy(H.bytes_tensor([images[n] for n in names]).reshape(2, 1))
    r = client.infer(model.name, [inp], client_timeout=60)
    logits = r.as_numpy("LOGITS")
    assert logits.shape == (2, model.classes)
    for i, n in enumerate(names):
        close(logits[i], reference[n][0])


def test_swin_v1_classify_agrees(swin_v1, model, images, reference):
    """The same image through swin.v1 Classify: same logits and probabilities per class id, and
    the labels are the ImageNet names."""
    pb, stub = swin_v1
    name = next(iter(images))
    resp = stub.Classify(pb.ClassifyRequest(image=images[name], top_k=model.classes), timeout=60)
    assert len(resp.predictions) == model.classes
    logits = np.zeros(model.classes, np.float32)
    probs = np.zeros(model.classes, np.float32)
    for p in resp.predictions:
        assert p.label == model.labels[p.class_id]
        logits[p.class_id] = p.logit
        probs[p.class_id] = p.probability
    close(logits, reference[name][0])
    close(probs, reference[name][1], atol=1e-5)


def test_raw_and_typed_give_identical_numbers(client, raw_stub, model, images, tensors):
    """tritonclient sends raw_input_contents; the same request with typed contents (bytes_contents /
    fp32_contents) gets typed outputs with the same numbers."""
    name = list(images)[0]
    blob = images[name]
    tensor = tensors[name][None]

    raw_img = infer_images(client, model.name, [blob])
    raw_resp = raw_img.get_response()
    assert len(raw_resp.raw_output_contents) == 2
    assert all(len(o.contents.fp32_contents) == 0 for o in raw_resp.outputs)

    typed = triton.InferInput("IMAGE", [1], "BYTES")
    typed._get_tensor().contents.bytes_contents.append(blob)  # typed: no raw content set
    r = client.infer(model.name, [typed], client_timeout=60)
    resp = r.get_response()
    assert len(resp.raw_output_contents) == 0, "typed inputs must get typed outputs"
    by_name = {o.name: o for o in resp.outputs}
    for out in ("LOGITS", "PROBABILITIES"):
        o = by_name[out]
        assert o.datatype == "FP32" and list(o.shape) == [1, model.classes]
        typed_vals = np.array(o.contents.fp32_contents, dtype=np.float32).reshape(1, -1)
        np.testing.assert_array_equal(typed_vals, raw_img.as_numpy(out), err_msg=f"IMAGE {out}")

    raw_in = infer_tensor(client, model.name, tensor)
    typed_in = triton.InferInput("INPUT", list(tensor.shape), "FP32")
    typed_in._get_tensor().contents.fp32_contents.extend(tensor.ravel().tolist())
    r = client.infer(model.name, [typed_in], client_timeout=60)
    resp = r.get_response()
    assert len(resp.raw_output_contents) == 0
    for o in resp.outputs:
        typed_vals = np.array(o.contents.fp32_contents, dtype=np.float32).reshape(1, -1)
        np.testing.assert_array_equal(typed_vals, raw_in.as_numpy(o.name), err_msg=f"INPUT {o.name}")

    # And with the raw stub: one raw request, then the same as typed; raw bytes == typed floats.
    req = service_pb2.ModelInferRequest(model_name=model.name, id="typed-1")
    t = req.inputs.add(name="INPUT", datatype="FP32", shape=list(tensor.shape))
    t.contents.fp32_contents.extend(tensor.ravel().tolist())
    typed_resp = raw_stub.ModelInfer(req, timeout=60)
    assert typed_resp.id == "typed-1"
    got = np.array(typed_resp.outputs[0].contents.fp32_contents, dtype=np.float32)
    np.testing.assert_array_equal(got, raw_in.as_numpy("LOGITS").ravel())


def test_outputs_default_order_and_selection(client, model, images, reference):
    name = list(images)[1]
    blob = images[name]
    r = infer_images(client, model.name, [blob])
    resp = r.get_response()
    assert [o.name for o in resp.outputs] == ["LOGITS", "PROBABILITIES"]

    only = infer_images(
        client, model.name, [blob], outputs=[triton.InferRequestedOutput("PROBABILITIES")]
    )
    resp = only.get_response()
    assert [o.name for o in resp.outputs] == ["PROBABILITIES"]
    assert len(resp.raw_output_contents) == 1
    assert list(resp.outputs[0].shape) == [1, model.classes]
    close(only.as_numpy("PROBABILITIES")[0], reference[name][1], atol=1e-5)
    assert only.as_numpy("LOGITS") is None

    both = infer_images(
        client,
        model.name,
        [blob],
        outputs=[
            triton.InferRequestedOutput("PROBABILITIES"),
            triton.InferRequestedOutput("LOGITS"),
        ],
    )
    resp = both.get_response()
    assert [o.name for o in resp.outputs] == ["PROBABILITIES", "LOGITS"]
    close(both.as_numpy("LOGITS")[0], reference[name][0])


def test_response_echoes_id_model_and_version(client, model, images):
    blob = next(iter(images.values()))
    for version in ("", "1"):
        r = infer_images(client, model.name, [blob], request_id="req-42", model_version=version)
        resp = r.get_response()
        assert resp.id == "req-42"
        assert resp.model_name == model.name
        assert resp.model_version == "1"


# --- classification extension ----------------------------------------------------------------


def test_classification_probabilities(client, model, images):
    names = list(images)[:2]
    k = 5
    r = infer_images(
        client,
        model.name,
        [images[n] for n in names],
        outputs=[
            triton.InferRequestedOutput("LOGITS"),
            triton.InferRequestedOutput("PROBABILITIES", class_count=k),
        ],
    )
    out = r.get_output("PROBABILITIES")
    assert out.datatype == "BYTES"
    assert list(out.shape) == [2, k]
    # raw inputs -> raw outputs, the BYTES one in Triton's length-prefixed layout
    assert len(r.get_response().raw_output_contents) == 2
    cls = r.as_numpy("PROBABILITIES")
    logits = r.as_numpy("LOGITS")
    assert cls.shape == (2, k) and logits.shape == (2, model.classes)
    for i in range(2):
        H.check_classification(list(cls[i]), H.softmax(logits[i]), model.labels, k)


def test_classification_logits(client, model, images, reference):
    name = list(images)[2]
    k = 3
    r = infer_images(
        client, model.name, [images[name]], outputs=[triton.InferRequestedOutput("LOGITS", class_count=k)]
    )
    cls = r.as_numpy("LOGITS")
    assert cls.shape == (1, k)
    H.check_classification(list(cls[0]), reference[name][0].astype(np.float64), model.labels, k)


def test_classification_k_larger_than_classes_is_clamped(client, model, images, reference):
    name = list(images)[0]
    r = infer_images(
        client,
        model.name,
        [images[name]],
        outputs=[triton.InferRequestedOutput("PROBABILITIES", class_count=model.classes + 7)],
    )
    cls = r.as_numpy("PROBABILITIES")
    assert cls.shape == (1, model.classes)
    entries = [H.parse_classification(e) for e in cls[0]]
    assert sorted(e[1] for e in entries) == list(range(model.classes))
    H.check_classification(
        list(cls[0]), H.softmax(reference[name][0]), model.labels, model.classes
    )


def test_classification_k_below_one_is_invalid(client, model, images):
    blob = next(iter(images.values()))
    expect_error(
        "INVALID_ARGUMENT",
        ["classification"],
        infer_images,
        client,
        model.name,
        [blob],
        outputs=[triton.InferRequestedOutput("PROBABILITIES", class_count=-1)],
    )


def test_classification_with_typed_input(raw_stub, model, images, reference):
    name = list(images)[0]
    req = service_pb2.ModelInferRequest(model_name=model.name)
    t = req.inputs.add(name="IMAGE", datatype="BYTES", shape=[1])
    t.contents.bytes_contents.append(images[name])
    o = req.outputs.add(name="PROBABILITIES")
    o.parameters["classification"].int64_param = 4
    resp = raw_stub.ModelInfer(req, timeout=60)
    assert len(resp.raw_output_contents) == 0
    out = resp.outputs[0]
    assert out.name == "PROBABILITIES" and out.datatype == "BYTES" and list(out.shape) == [1, 4]
    H.check_classification(
        list(out.contents.bytes_contents), H.softmax(reference[name][0]), model.labels, 4
    )


# --- errors ------------------------------------------------------------------------------------


def _input(name, shape, datatype, array):
    inp = triton.InferInput(name, shape, datatype)
    inp.set_data_from_numpy(array)
    return inp


def test_error_wrong_dtype(client, model):
    S = model.size
    inp = _input("INPUT", [1, 3, S, S], "FP64", np.zeros((1, 3, S, S), np.float64))
    expect_error("INVALID_ARGUMENT", ["INPUT", "FP64"], client.infer, model.name, [inp])
    img = _input("IMAGE", [1], "INT32", np.zeros(1, np.int32))
    expect_error("INVALID_ARGUMENT", ["IMAGE"], client.infer, model.name, [img])


@pytest.mark.parametrize(
    "shape",
    [
        lambda S: [1, 3, S, S + 8],
        lambda S: [1, 1, S, S],
        lambda S: [3, S, S],
        lambda S: [1, 3, S * S],
    ],
    ids=["wide", "one_channel", "no_batch_dim", "flat"],
)
def test_error_wrong_shape(client, model, shape):
    s = shape(model.size)
    inp = _input("INPUT", s, "FP32", np.zeros(s, np.float32))
    expect_error("INVALID_ARGUMENT", ["INPUT"], client.infer, model.name, [inp])


def test_error_image_wrong_shape(client, model, images):
    blob = next(iter(images.values()))
    inp = _input("IMAGE", [1, 2], "BYTES", H.bytes_tensor([blob, blob]).reshape(1, 2))
    expect_error("INVALID_ARGUMENT", ["IMAGE"], client.infer, model.name, [inp])


def test_error_wrong_byte_count(client, model, images):
    S = model.size
    inp = _input("INPUT", [1, 3, S, S], "FP32", np.zeros((1, 3, S, S), np.float32))
    inp.set_shape([2, 3, S, S])  # declares two images, carries one
    expect_error("INVALID_ARGUMENT", ["INPUT"], client.infer, model.name, [inp])
    # IMAGE: shape says two elements, the raw content holds one.
    blob = next(iter(images.values()))
    img = _input("IMAGE", [1], "BYTES", H.bytes_tensor([blob]))
    img.set_shape([2])
    expect_error("INVALID_ARGUMENT", ["IMAGE"], client.infer, model.name, [img])


def test_error_unknown_input_name(client, model):
    S = model.size
    inp = _input("PIXELS", [1, 3, S, S], "FP32", np.zeros((1, 3, S, S), np.float32))
    expect_error("INVALID_ARGUMENT", ["PIXELS"], client.infer, model.name, [inp])


def test_error_unknown_output_name(client, model, images):
    blob = next(iter(images.values()))
    expect_error(
        "INVALID_ARGUMENT",
        ["SCORES"],
        infer_images,
        client,
        model.name,
        [blob],
        outputs=[triton.InferRequestedOutput("SCORES")],
    )


def test_error_duplicate_names(client, model, images):
    blob = next(iter(images.values()))
    expect_error(
        "INVALID_ARGUMENT",
        ["LOGITS"],
        infer_images,
        client,
        model.name,
        [blob],
        outputs=[triton.InferRequestedOutput("LOGITS"), triton.InferRequestedOutput("LOGITS")],
    )
    a = _input("IMAGE", [1], "BYTES", H.bytes_tensor([blob]))
    b = _input("IMAGE", [1], "BYTES", H.bytes_tensor([blob]))
    expect_error("INVALID_ARGUMENT", ["IMAGE"], client.infer, model.name, [a, b])


def test_error_both_or_neither_input(client, model, images, tensors):
    name = next(iter(images))
    img = _input("IMAGE", [1], "BYTES", H.bytes_tensor([images[name]]))
    t = tensors[name][None]
    ten = _input("INPUT", list(t.shape), "FP32", t)
    expect_error("INVALID_ARGUMENT", [], client.infer, model.name, [img, ten])
    expect_error("INVALID_ARGUMENT", [], client.infer, model.name, [])


def test_error_unknown_model_and_version(client, model, images):
    blob = next(iter(images.values()))
    expect_error("NOT_FOUND", ["no-such-model"], infer_images, client, "no-such-model", [blob])
    expect_error(
        "NOT_FOUND", ["7"], infer_images, client, model.name, [blob], model_version="7"
    )


@pytest.mark.parametrize(
    "blob",
    [b"this is not an image", b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, b"\xff\xd8\xff\xe0trunc"],
    ids=["text", "empty", "png_header_only", "jpeg_truncated"],
)
def test_error_undecodable_image(client, model, blob):
    expect_error("INVALID_ARGUMENT", ["IMAGE"], infer_images, client, model.name, [blob])


def test_error_undecodable_image_in_a_batch(client, model, images):
    good = next(iter(images.values()))
    expect_error(
        "INVALID_ARGUMENT", ["IMAGE"], infer_images, client, model.name, [good, b"garbage"]
    )


def test_error_raw_layout(raw_stub, model, images):
    """Malformed raw BYTES (a length prefix past the end) and a raw_input_contents count that does
    not match the inputs: INVALID_ARGUMENT, never a crash."""
    blob = next(iter(images.values()))
    req = service_pb2.ModelInferRequest(model_name=model.name)
    req.inputs.add(name="IMAGE", datatype="BYTES", shape=[1])
    req.raw_input_contents.append(H.serialize_bytes_elements([blob])[:-10])
    with pytest.raises(grpc.RpcError) as e:
        raw_stub.ModelInfer(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "image" in e.value.details().lower()

    req = service_pb2.ModelInferRequest(model_name=model.name)
    req.inputs.add(name="IMAGE", datatype="BYTES", shape=[1])
    req.raw_input_contents.append(H.serialize_bytes_elements([blob]))
    req.raw_input_contents.append(b"\x00\x00\x00\x00")
    with pytest.raises(grpc.RpcError) as e:
        raw_stub.ModelInfer(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()

    # Typed fp32_contents with the wrong number of values.
    S = model.size
    req = service_pb2.ModelInferRequest(model_name=model.name)
    t = req.inputs.add(name="INPUT", datatype="FP32", shape=[1, 3, S, S])
    t.contents.fp32_contents.extend([0.0] * (3 * S * S - 1))
    with pytest.raises(grpc.RpcError) as e:
        raw_stub.ModelInfer(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert "input" in e.value.details().lower()


def _raw_image_request(model_name, raw, shape=(1,)):
    req = service_pb2.ModelInferRequest(model_name=model_name)
    req.inputs.add(name="IMAGE", datatype="BYTES", shape=list(shape))
    req.raw_input_contents.append(raw)
    return req


def _case_trailing(name, S, blob):
    return _raw_image_request(name, H.serialize_bytes_elements([blob]) + b"abc"), "IMAGE"


def _case_zero_batch_input(name, S, blob):
    req = service_pb2.ModelInferRequest(model_name=name)
    req.inputs.add(name="INPUT", datatype="FP32", shape=[0, 3, S, S])
    req.raw_input_contents.append(b"")
    return req, "INPUT"


def _case_zero_batch_image(name, S, blob):
    return _raw_image_request(name, b"", shape=(0,)), "IMAGE"


def _case_negative_dim(name, S, blob):
    req = service_pb2.ModelInferRequest(model_name=name)
    req.inputs.add(name="INPUT", datatype="FP32", shape=[-1, 3, S, S])
    req.raw_input_contents.append(bytes(4 * 3 * S * S))
    return req, "INPUT"


def _case_huge_batch(name, S, blob):
    req = service_pb2.ModelInferRequest(model_name=name)
    req.inputs.add(name="INPUT", datatype="FP32", shape=[2**40, 3, S, S])
    req.raw_input_contents.append(b"")
    return req, "INPUT"


def _case_typed_and_raw(name, S, blob):
    req = _raw_image_request(name, H.serialize_bytes_elements([blob]))
    req.inputs[0].contents.bytes_contents.append(blob)
    return req, "IMAGE"


def _case_no_data(name, S, blob):
    req = service_pb2.ModelInferRequest(model_name=name)
    req.inputs.add(name="IMAGE", datatype="BYTES", shape=[1])
    return req, "IMAGE"


def _case_classification_not_int(name, S, blob):
    req = _raw_image_request(name, H.serialize_bytes_elements([blob]))
    req.outputs.add(name="LOGITS").parameters["classification"].string_param = "5"
    return req, "classification"


def _case_negative_timeout(name, S, blob):
    req = _raw_image_request(name, H.serialize_bytes_elements([blob]))
    req.parameters["timeout"].int64_param = -5
    return req, "timeout"


@pytest.mark.parametrize(
    "case",
    [
        _case_trailing,
        _case_zero_batch_input,
        _case_zero_batch_image,
        _case_negative_dim,
        _case_huge_batch,
        _case_typed_and_raw,
        _case_no_data,
        _case_classification_not_int,
        _case_negative_timeout,
    ],
    ids=lambda f: f.__name__[len("_case_"):],
)
def test_error_malformed_requests(raw_stub, model, images, case):
    """Requests no well-behaved client sends: INVALID_ARGUMENT naming the problem, no crash."""
    req, needle = case(model.name, model.size, images["tiny_97x61.jpg"])
    with pytest.raises(grpc.RpcError) as e:
        raw_stub.ModelInfer(req, timeout=30)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, e.value.details()
    assert needle.lower() in e.value.details().lower(), e.value.details()


def test_timeout_parameter_expires(client, model, images):
    """Triton's request parameter `timeout` (µs) tightens the deadline: 1 µs cannot be met."""
    blob = next(iter(images.values()))
    expect_error("DEADLINE_EXCEEDED", [], infer_images, client, model.name, [blob], timeout=1)
    # The server is fine afterwards.
    assert infer_images(client, model.name, [blob]).as_numpy("LOGITS").shape == (1, model.classes)


# --- async, concurrent, streaming --------------------------------------------------------------


def test_async_infer_with_callbacks(client, model, images, reference):
    names = list(images)
    done = queue.Queue()
    for i, n in enumerate(names):
        inp = _input("IMAGE", [1], "BYTES", H.bytes_tensor([images[n]]))
        client.async_infer(
            model.name,
            [inp],
            callback=lambda result, error, n=n: done.put((n, result, error)),
            request_id=f"async-{i}",
            client_timeout=120,
        )
    seen = set()
    for _ in names:
        n, result, error = done.get(timeout=120)
        assert error is None, f"{n}: {error}"
        assert result.get_response().id == f"async-{names.index(n)}"
        close(result.as_numpy("LOGITS")[0], reference[n][0])
        seen.add(n)
    assert seen == set(names)


def test_concurrent_calls_from_16_threads(client, model, images, reference, tensors):
    """16 threads at once, IMAGE and INPUT mixed, each answer equals its image's reference."""
    names = list(images)
    start = threading.Barrier(16)

    def call(i):
        n = names[i % len(names)]
        start.wait(timeout=30)
        if i % 4 == 3:
            r = infer_tensor(client, model.name, tensors[n][None], request_id=f"t{i}")
        else:
            r = infer_images(client, model.name, [images[n]], request_id=f"t{i}")
        assert r.get_response().id == f"t{i}"
        return n, r.as_numpy("LOGITS")[0], r.as_numpy("PROBABILITIES")[0]

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(call, range(16)))
    assert len(results) == 16
    for n, logits, probs in results:
        close(logits, reference[n][0])
        close(probs, reference[n][1], atol=1e-5)


def test_stream_infer_in_order_with_errors(model, images, reference, server):
    """ModelStreamInfer through start_stream / async_stream_infer: one response per request, in
    request order; an error comes back on the stream and the stream stays usable."""
    names = list(images)[:3]
    got = queue.Queue()
    c = triton.InferenceServerClient(server.url)
    try:
        c.start_stream(callback=lambda result, error: got.put((result, error)))
        plan = [names[0], None, names[1], "unknown-output", names[2]]
        for i, step in enumerate(plan):
            if step is None:
                inp = _input("IMAGE", [1], "BYTES", H.bytes_tensor([b"not an image"]))
                c.async_stream_infer(model.name, [inp], request_id=f"s{i}")
            elif step == "unknown-output":
                inp = _input("IMAGE", [1], "BYTES", H.bytes_tensor([images[names[0]]]))
                c.async_stream_infer(
                    model.name,
                    [inp],
                    request_id=f"s{i}",
                    outputs=[triton.InferRequestedOutput("NOPE")],
                )
            else:
                inp = _input("IMAGE", [1], "BYTES", H.bytes_tensor([images[step]]))
                c.async_stream_infer(model.name, [inp], request_id=f"s{i}")
        answers = [got.get(timeout=120) for _ in plan]
    finally:
        c.stop_stream()
        c.close()
    for i, (step, (result, error)) in enumerate(zip(plan, answers)):
        if step is None:
            assert result is None and error is not None, f"request {i}: expected an error"
            assert "image" in error.message().lower(), error.message()
        elif step == "unknown-output":
            assert result is None and error is not None
            assert "NOPE" in error.message(), error.message()
        else:
            assert error is None, f"request {i}: {error}"
            assert result.get_response().id == f"s{i}", "responses out of request order"
            close(result.as_numpy("LOGITS")[0], reference[step][0])


# --- statistics -------------------------------------------------------------------------------


def _stats(client, name):
    resp = client.get_inference_statistics(model_name=name)
    found = [s for s in resp.model_stats if s.name == name]
    assert len(found) == 1, resp
    return found[0]


def _wait_stats(client, name, pred, timeout=3.0):
    """Statistics may be recorded just after the response leaves: allow a moment."""
    end = time.monotonic() + timeout
    while True:
        s = _stats(client, name)
        if pred(s) or time.monotonic() > end:
            return s
        time.sleep(0.05)


def test_statistics_count_inferences(client, swin_v1, model, images):
    pb, stub = swin_v1
    blobs = list(images.values())
    before = _stats(client, model.name)
    assert before.version in ("", "1")
    t0_ms = int(time.time() * 1000)

    infer_images(client, model.name, blobs[:2])  # two images, one request
    infer_images(client, model.name, blobs[2:3])  # one image
    stub.Classify(pb.ClassifyRequest(image=blobs[3]), timeout=60)  # swin.v1 counts too

    after = _wait_stats(client, model.name, lambda s: s.inference_count >= before.inference_count + 4)
    assert after.inference_count - before.inference_count == 4
    assert 1 <= after.execution_count - before.execution_count <= 4
    assert t0_ms - 1000 <= after.last_inference <= int(time.time() * 1000) + 1000
    b, a = before.inference_stats, after.inference_stats
    assert a.success.count - b.success.count >= 2
    assert a.success.ns > b.success.ns
    for stage in ("queue", "compute_input", "compute_infer", "compute_output"):
        sb, sa = getattr(b, stage), getattr(a, stage)
        assert sa.count > sb.count, stage
        assert sa.ns > sb.ns, stage

    # A failed inference (undecodable image) is counted as a failure, not as an inference.
    expect_error("INVALID_ARGUMENT", [], infer_images, client, model.name, [b"garbage"])
    failed = _wait_stats(client, model.name, lambda s: s.inference_stats.fail.count > a.fail.count)
    assert failed.inference_stats.fail.count == a.fail.count + 1
    assert failed.inference_count == after.inference_count

    # "" means all models: ours is among them.
    all_stats = client.get_inference_statistics()
    assert model.name in [s.name for s in all_stats.model_stats]
    expect_error("NOT_FOUND", [], client.get_inference_statistics, "nope-model")


# --- the second server: auth, --model-name, max_batch_size ------------------------------------


def test_auth_required_and_model_name_flag(auth_server, images):
    c = triton.InferenceServerClient(auth_server.url)
    try:
        expect_error("UNAUTHENTICATED", [], c.is_server_live)
        expect_error("UNAUTHENTICATED", [], c.get_model_metadata, AUTH_MODEL_NAME)
        expect_error(
            "UNAUTHENTICATED",
            [],
            c.is_server_ready,
            headers={"authorization": "Bearer wrong-token"},
        )
        ok = {"authorization": f"Bearer {AUTH_TOKEN}"}
        assert c.is_server_live(headers=ok) is True
        assert c.is_model_ready(AUTH_MODEL_NAME, headers=ok) is True
        md = c.get_model_metadata(AUTH_MODEL_NAME, headers=ok)
        assert md.name == AUTH_MODEL_NAME
        assert c.get_model_config(AUTH_MODEL_NAME, headers=ok).config.max_batch_size == (
            AUTH_MAX_BATCH_IMAGES
        )
        blob = next(iter(images.values()))
        expect_error("UNAUTHENTICATED", [], infer_images, c, AUTH_MODEL_NAME, [blob])
        r = infer_images(c, AUTH_MODEL_NAME, [blob], headers=ok)
        assert r.get_response().model_name == AUTH_MODEL_NAME
        assert r.as_numpy("LOGITS").shape[0] == 1
    finally:
        c.close()
    # grpc.health.v1 needs no token (probes): Check{service=""} -> SERVING (enum 1), raw bytes.
    channel = grpc.insecure_channel(auth_server.url)
    try:
        check = channel.unary_unary("/grpc.health.v1.Health/Check")
        assert check(b"", timeout=10) == b"\x08\x01"
    finally:
        channel.close()


def test_batch_over_max_batch_size_is_invalid(auth_server, images):
    ok = {"authorization": f"Bearer {AUTH_TOKEN}"}
    c = triton.InferenceServerClient(auth_server.url)
    try:
        blob = images["tiny_97x61.jpg"]
        expect_error(
            "INVALID_ARGUMENT",
            [],
            infer_images,
            c,
            AUTH_MODEL_NAME,
            [blob] * (AUTH_MAX_BATCH_IMAGES + 1),
            headers=ok,
        )
    finally:
        c.close()
