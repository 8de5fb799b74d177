"""The HTTP port (--http-listen) through Triton's own HTTP client, tritonclient[http], and through
plain HTTP (requests): every call of tritonclient.http that swin-serve serves, binary and JSON,
classification, errors and tokens, each answer compared with the gRPC port's (tritonclient[grpc])
for the same image, and /v1/classify raw and multipart.

Expectations come from outside the HTTP code: the gRPC port's answers, the model facts of
GetModelInfo, numpy's softmax."""

import numpy as np
import pytest
import requests
import tritonclient.grpc as triton_grpc
import tritonclient.http as triton_http
from tritonclient.utils import InferenceServerException

import oip_helpers as H
from conftest import AUTH_MODEL_NAME, AUTH_TOKEN, REPO

ATOL = 1e-6


@pytest.fixture(scope="module")
def server(small_server):
    return small_server


@pytest.fixture(scope="module")
def http(server):
    c = triton_http.InferenceServerClient(server.http_url, network_timeout=120)
    yield c
    c.close()


@pytest.fixture(scope="module")
def grpc_client(server):
    c = triton_grpc.InferenceServerClient(server.url)
    yield c
    c.close()


class Facts:
    def __init__(self, name, classes, labels):
        self.name, self.classes, self.labels = name, classes, labels


@pytest.fixture(scope="module")
def model(grpc_client):
    """The small server's model, as its gRPC port describes it."""
    meta = grpc_client.get_model_metadata(grpc_client.get_model_repository_index().models[0].name)
    labels = (REPO / "models" / "imagenet_labels.txt").read_text().splitlines()
    classes = int(meta.outputs[0].shape[-1])
    assert classes == len(labels)
    return Facts(meta.name, classes, labels)


@pytest.fixture(scope="module")
def few_images(images):
    return dict(list(images.items())[:2])


def http_image_input(blobs, binary):
    inp = triton_http.InferInput("IMAGE", [len(blobs)], "BYTES")
    if binary:
        inp.set_data_from_numpy(H.bytes_tensor(blobs), binary_data=True)
    else:
        # JSON: tritonclient writes BYTES elements as strings; an image is its file in base64.
        import base64

        inp.set_data_from_numpy(
            np.array([base64.b64encode(b) for b in blobs], dtype=np.object_), binary_data=False
        )
    return inp


def grpc_reference(grpc_client, model, blob):
    inp = triton_grpc.InferInput("IMAGE", [1], "BYTES")
    inp.set_data_from_numpy(H.bytes_tensor([blob]))
    r = grpc_client.infer(model.name, [inp], client_timeout=120)
    return r.as_numpy("LOGITS")[0], r.as_numpy("PROBABILITIES")[0]


def test_health_and_metadata(http, model):
    assert http.is_server_live()
    assert http.is_server_ready()
    assert http.is_model_ready(model.name)
    assert http.is_model_ready(model.name, "1")
    assert not http.is_model_ready("no-such-model")
    meta = http.get_server_metadata()
    assert meta["name"] == "swin-serve" and "classification" in meta["extensions"]
    m = http.get_model_metadata(model.name)
    assert m["name"] == model.name and m["versions"] == ["1"]
    names = {t["name"] for t in m["inputs"]}
    assert names == {"IMAGE", "INPUT"}, m
    assert {t["name"] for t in m["outputs"]} == {"LOGITS", "PROBABILITIES"}


def test_config_stats_and_index(http, grpc_client, model):
    config = http.get_model_config(model.name)
    grpc_config = grpc_client.get_model_config(model.name, as_json=True)["config"]
    assert config["name"] == model.name
    assert int(config["max_batch_size"]) == int(grpc_config["max_batch_size"]) >= 1
    assert [i["name"] for i in config["input"]] == [i["name"] for i in grpc_config["input"]]
    stats = http.get_inference_statistics(model.name)
    assert stats["model_stats"][0]["name"] == model.name
    assert isinstance(stats["model_stats"][0]["inference_count"], int)
    index = http.get_model_repository_index()
    assert index == [{"name": model.name, "version": "1", "state": "READY", "reason": ""}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_infer_equals_the_grpc_port(http, grpc_client, model, few_images, binary):
    for name, blob in few_images.items():
        logits, probs = grpc_reference(grpc_client, model, blob)
        outputs = [
            triton_http.InferRequestedOutput("LOGITS", binary_data=binary),
            triton_http.InferRequestedOutput("PROBABILITIES", binary_data=binary),
        ]
        r = http.infer(model.name, [http_image_input([blob], binary)], outputs=outputs, request_id=f"h-{name}")
        assert r.get_response()["id"] == f"h-{name}"
        np.testing.assert_allclose(r.as_numpy("LOGITS")[0], logits, atol=ATOL, rtol=0)
        np.testing.assert_allclose(r.as_numpy("PROBABILITIES")[0], probs, atol=ATOL, rtol=0)
        softmax = H.softmax(r.as_numpy("LOGITS")[0].astype(np.float64))
        np.testing.assert_allclose(r.as_numpy("PROBABILITIES")[0], softmax, atol=1e-6)


def test_infer_without_outputs_and_a_batch(http, grpc_client, model, few_images):
    blobs = list(few_images.values())
    r = http.infer(model.name, [http_image_input(blobs, True)])
    probs = r.as_numpy("PROBABILITIES")
    assert probs.shape == (2, model.classes)
    for row, blob in zip(probs, blobs):
        np.testing.assert_allclose(row, grpc_reference(grpc_client, model, blob)[1], atol=ATOL, rtol=0)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_classification(http, grpc_client, model, images, binary):
    blob = next(iter(images.values()))
    _, probs = grpc_reference(grpc_client, model, blob)
    out = triton_http.InferRequestedOutput("PROBABILITIES", binary_data=binary, class_count=3)
    r = http.infer(model.name, [http_image_input([blob], True)], outputs=[out])
    entries = r.as_numpy("PROBABILITIES")
    assert entries.shape == (1, 3)
    H.check_classification(entries[0], probs, model.labels, 3)


def test_errors_have_their_http_status(http, model, images):
    blob = next(iter(images.values()))
    with pytest.raises(InferenceServerException) as e:
        http.infer("no-such-model", [http_image_input([blob], True)])
    assert e.value.status() == "404", e.value
    bad = triton_http.InferInput("IMAGE", [1], "FP32")
    bad.set_data_from_numpy(np.zeros([1], dtype=np.float32))
    with pytest.raises(InferenceServerException) as e:
        http.infer(model.name, [bad])
    assert e.value.status() == "400" and "BYTES" in e.value.message(), e.value
    with pytest.raises(InferenceServerException) as e:
        http.infer(model.name, [http_image_input([b"not an image"], True)])
    assert e.value.status() == "400", e.value
    with pytest.raises(InferenceServerException) as e:
        http.get_model_metadata("no-such-model")
    assert "no-such-model" in e.value.message()


def test_tokens(auth_server, images):
    blob = next(iter(images.values()))
    open_client = triton_http.InferenceServerClient(auth_server.http_url)
    assert open_client.is_server_live()  # the probes need no token
    with pytest.raises(InferenceServerException) as e:
        open_client.get_model_metadata(AUTH_MODEL_NAME)
    assert e.value.status() == "401", e.value
    headers = {"Authorization": f"Bearer {AUTH_TOKEN}"}
    m = open_client.get_model_metadata(AUTH_MODEL_NAME, headers=headers)
    assert m["name"] == AUTH_MODEL_NAME
    assert open_client.is_model_ready(AUTH_MODEL_NAME, headers=headers)
    open_client.close()


def test_v1_classify_raw_and_multipart(server, model, few_images, grpc_client):
    base = f"http://{server.http_url}"
    for name, blob in few_images.items():
        _, probs = grpc_reference(grpc_client, model, blob)
        raw = requests.post(f"{base}/v1/classify?top_k=5", data=blob, headers={"Content-Type": "application/octet-stream"}, timeout=120)
        assert raw.status_code == 200, raw.text
        form = requests.post(f"{base}/v1/classify?top_k=5", files={"whatever": (name, blob)}, timeout=120)
        assert form.status_code == 200, form.text
        for answer in (raw.json(), form.json()):
            top = np.argsort(-probs, kind="stable")[:5]
            assert [p["classId"] for p in answer["predictions"]] == [int(i) for i in top]
            assert answer["predictions"][0]["label"] == model.labels[top[0]]
            np.testing.assert_allclose([p["probability"] for p in answer["predictions"]], probs[top], atol=ATOL)
    bad = requests.post(f"{base}/v1/classify", data=b"{}", headers={"Content-Type": "application/json"}, timeout=30)
    assert bad.status_code == 415 and "error" in bad.json()
