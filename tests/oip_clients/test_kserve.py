"""The Open Inference Protocol v2 service through KServe's Python SDK (kserve.InferenceGRPCClient,
InferRequest / InferInput / RequestedOutput), against the real binary. KServe sends typed
`contents` unless the data is a numpy array (then raw_input_contents).

Runs in its own process (SWIN_OIP_CLIENT=kserve, see conftest.py): kserve and tritonclient cannot
be imported together. Expectations: swin.v1 Classify for the same image, the tests' own
preprocessing (INPUT), numpy softmax, models/imagenet_labels.txt."""

import asyncio

import grpc
import numpy as np
import pytest
from kserve import InferenceGRPCClient, InferInput, InferRequest
from kserve.protocol.infer_type import RequestedOutput

import oip_helpers as H
from conftest import AUTH_MODEL_NAME, AUTH_TOKEN

LOGIT_ATOL = 1e-4


def run(coro_fn, url, **client_kw):
    """Run `coro_fn(client)` with a fresh InferenceGRPCClient on a fresh event loop."""

    async def main():
        client = InferenceGRPCClient(url, timeout=120, **client_kw)
        try:
            return await coro_fn(client)
        finally:
            await client.close()

    return asyncio.run(main())


def rpc_error(coro_fn, url, **client_kw):
    with pytest.raises(grpc.RpcError) as info:
        run(coro_fn, url, **client_kw)
    return info.value


# A few of the test images (each costs one model run per request).
NAMES = ["landscape_403x297.jpg", "grey_330x250.jpg", "rgba_300x300.png", "wide_900x120.png"]


@pytest.fixture(scope="module")
def reference(server, model, images, swin_v1):
    """name -> (logits, probabilities) per image, from swin.v1 Classify (not OIP): all C classes."""
    pb, stub = swin_v1
    ref = {}
    for n in NAMES:
        resp = stub.Classify(pb.ClassifyRequest(image=images[n], top_k=model.classes), timeout=60)
        logits = np.zeros(model.classes, np.float32)
        probs = np.zeros(model.classes, np.float32)
        for p in resp.predictions:
            assert p.label == model.labels[p.class_id]
            logits[p.class_id] = p.logit
            probs[p.class_id] = p.probability
        ref[n] = (logits, probs)
    return ref


def test_kserve_live_ready_model_ready(server, model):
    async def go(c):
        return (
            await c.is_server_live(),
            await c.is_server_ready(),
            await c.is_model_ready(model.name),
        )

    assert run(go, server.url) == (True, True, True)

    err = rpc_error(lambda c: c.is_model_ready("kserve-no-such-model"), server.url)
    assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()


def test_kserve_typed_image(server, model, images, reference):
    names = NAMES[:2]
    req = InferRequest(
        model_name=model.name,
        request_id="kserve-img",
        infer_inputs=[
            InferInput("IMAGE", [len(names)], "BYTES", data=[images[n] for n in names])
        ],
    )
    assert req.to_grpc().inputs[0].contents.bytes_contents, "kserve should send typed contents"
    resp = run(lambda c: c.infer(req), server.url)
    assert resp.id == "kserve-img"
    assert resp.model_name == model.name
    assert resp.model_version == "1"
    assert [o.name for o in resp.outputs] == ["LOGITS", "PROBABILITIES"]
    logits = resp.get_output_by_name("LOGITS")
    probs = resp.get_output_by_name("PROBABILITIES")
    assert logits.datatype == "FP32" and logits.shape == [2, model.classes]
    assert probs.datatype == "FP32" and probs.shape == [2, model.classes]
    # typed in -> typed out: kserve read the values from contents.fp32_contents
    assert len(logits.data) == 2 * model.classes
    L, P = logits.as_numpy(), probs.as_numpy()
    for i, n in enumerate(names):
        assert np.max(np.abs(L[i] - reference[n][0])) <= LOGIT_ATOL, n
        assert np.max(np.abs(P[i] - reference[n][1])) <= 1e-5, n
        np.testing.assert_allclose(P[i], H.softmax(L[i]), rtol=1e-5, atol=1e-9)


def test_kserve_typed_and_raw_input_tensor(server, model, tensors, reference):
    names = NAMES[2:4]
    batch = np.stack([tensors[n] for n in names]).astype(np.float32)

    typed = InferRequest(
        model_name=model.name,
        infer_inputs=[InferInput("INPUT", list(batch.shape), "FP32", data=batch.ravel().tolist())],
    )
    assert len(typed.to_grpc().inputs[0].contents.fp32_contents) == batch.size
    raw_inp = InferInput("INPUT", list(batch.shape), "FP32")
    raw_inp.set_data_from_numpy(batch, binary_data=True)
    raw = InferRequest(model_name=model.name, infer_inputs=[raw_inp])
    assert len(raw.to_grpc().raw_input_contents) == 1

    async def go(c):
        return await c.infer(typed), await c.infer(raw)

    t, r = run(go, server.url)
    tl = t.get_output_by_name("LOGITS").as_numpy()
    rl = r.get_output_by_name("LOGITS").as_numpy()
    assert tl.shape == rl.shape == (2, model.classes)
    # The two images of a request may run as one engine batch or as two (two instances): the
    # numbers then differ in the last bits (~1e-6), so typed and raw agree to that, not exactly.
    np.testing.assert_allclose(tl, rl, rtol=0, atol=1e-5)
    np.testing.assert_allclose(
        t.get_output_by_name("PROBABILITIES").as_numpy(),
        r.get_output_by_name("PROBABILITIES").as_numpy(),
        rtol=1e-4,
        atol=1e-9,
    )
    for i, n in enumerate(names):
        assert np.max(np.abs(tl[i] - reference[n][0])) <= LOGIT_ATOL, n


def test_kserve_requested_output_classification(server, model, images, reference):
    name = NAMES[0]
    req = InferRequest(
        model_name=model.name,
        infer_inputs=[InferInput("IMAGE", [1], "BYTES", data=[images[name]])],
        request_outputs=[RequestedOutput("PROBABILITIES", parameters={"classification": 3})],
    )
    resp = run(lambda c: c.infer(req), server.url)
    assert [o.name for o in resp.outputs] == ["PROBABILITIES"]
    out = resp.outputs[0]
    assert out.datatype == "BYTES" and out.shape == [1, 3]
    entries = out.as_numpy()[0]
    H.check_classification(list(entries), H.softmax(reference[name][0]), model.labels, 3)


def test_kserve_errors(server, model, images):
    blob = next(iter(images.values()))

    def req(model_name, inputs):
        return InferRequest(model_name=model_name, infer_inputs=inputs)

    err = rpc_error(
        lambda c: c.infer(req("kserve-missing", [InferInput("IMAGE", [1], "BYTES", data=[blob])])),
        server.url,
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND, err.details()
    assert "kserve-missing" in err.details()

    err = rpc_error(
        lambda c: c.infer(req(model.name, [InferInput("IMAGE", [1], "BYTES", data=[b"nope"])])),
        server.url,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "image" in err.details().lower()

    err = rpc_error(
        lambda c: c.infer(req(model.name, [InferInput("INPUT", [1, 3, 2, 2], "FP32", data=[0.0] * 12)])),
        server.url,
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "input" in err.details().lower()


def test_kserve_auth_headers(auth_server, images):
    blob = next(iter(images.values()))
    ok = (("authorization", f"Bearer {AUTH_TOKEN}"),)
    err = rpc_error(lambda c: c.is_server_live(), auth_server.url)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED, err.details()

    async def go(c):
        live = await c.is_server_live(headers=ok)
        ready = await c.is_model_ready(AUTH_MODEL_NAME, headers=ok)
        resp = await c.infer(
            InferRequest(
                model_name=AUTH_MODEL_NAME,
                infer_inputs=[InferInput("IMAGE", [1], "BYTES", data=[blob])],
            ),
            headers=ok,
        )
        return live, ready, resp

    live, ready, resp = run(go, auth_server.url)
    assert live and ready
    assert resp.model_name == AUTH_MODEL_NAME
    assert resp.get_output_by_name("LOGITS").shape[0] == 1
