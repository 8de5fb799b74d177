"""The tests' own preprocessing (oip_helpers.preprocess, Pillow + numpy) is the official Swin eval
transform: it reproduces the torchvision reference values stored in
tests/fixtures/preprocess/manifest.txt exactly. No server involved; this is what makes the
INPUT-vs-IMAGE comparison in test_tritonclient.py an independent check."""

import warnings

import numpy as np
import pytest

import oip_helpers as H

FIXTURES = H.REPO / "tests" / "fixtures" / "preprocess"


def _samples():
    manifest = FIXTURES / "manifest.txt"
    if not manifest.is_file():
        return []
    out = []
    for line in manifest.read_text().splitlines():
        p = line.split()
        if p and p[0] == "sample":
            pairs = [(int(p[i]), float(p[i + 1])) for i in range(3, len(p), 2)]
            out.append((p[1], int(p[2]), pairs))
    return out


SAMPLES = _samples()


@pytest.mark.skipif(not SAMPLES, reason="no preprocessing fixtures")
def test_reference_preprocessing_equals_torchvision_samples():
    checked = 0
    for name, size, pairs in SAMPLES:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Pillow: palette + transparency
            t = H.preprocess((FIXTURES / "inputs" / name).read_bytes(), size).ravel()
        assert t.shape == (3 * size * size,)
        got = np.array([t[i] for i, _ in pairs], dtype=np.float32)
        want = np.array([v for _, v in pairs], dtype=np.float32)
        np.testing.assert_array_equal(got, want, err_msg=f"{name} at {size}")
        checked += 1
    assert checked >= 20


def test_generated_images_are_varied():
    imgs = H.make_images()
    assert len(imgs) >= 6
    assert imgs == H.make_images(), "test images must be deterministic"
    tensors = [H.preprocess(b, 256) for b in imgs.values()]
    for t in tensors:
        assert t.shape == (3, 256, 256) and t.dtype == np.float32
        assert float(t.std()) > 0.1
