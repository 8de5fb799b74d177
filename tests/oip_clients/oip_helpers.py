"""Helpers shared by the OIP client tests: test images, an independent reference preprocessing
(Pillow + numpy, the official Swin eval transform), softmax, classification-string parsing and
error assertions. Nothing here talks to the server."""

import io
import struct
from pathlib import Path

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
FIXTURE_INPUTS = REPO / "tests" / "fixtures" / "preprocess" / "inputs"

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)

# Real photos already in the repository (scikit-image's), used beside the generated ones.
REAL_PHOTOS = ["chelsea_q90.jpg", "coffee_q75_444.jpg"]


def _photo_like(rng, width, height):
    """A smooth, photo-like RGB picture: gradients, a few soft blobs and edges, sensor noise."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x /= max(width - 1, 1)
    y /= max(height - 1, 1)
    img = np.zeros((height, width, 3), np.float32)
    img[..., 0] = 200 * x + 30 * np.sin(7 * y)
    img[..., 1] = 160 * y + 40 * np.cos(5 * x + 2 * y)
    img[..., 2] = 120 * (1 - x) * (1 - y) + 60
    for _ in range(5):
        cx, cy = rng.uniform(0, 1, 2)
        r = rng.uniform(0.05, 0.3)
        color = rng.uniform(0, 255, 3).astype(np.float32)
        w = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - w) + color * w
    # a hard edge (an object boundary)
    mask = (x + 0.3 * y) > rng.uniform(0.4, 0.8)
    img[mask] = img[mask] * 0.6 + 40
    img += rng.normal(0, 6, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).astype(np.uint8)


def _encode(img, fmt, **kw):
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def make_images():
    """name -> encoded bytes. Deterministic; JPEG and PNG, odd sizes and aspect ratios,
    greyscale, RGBA, an image smaller than the crop, and real photos from the fixtures."""
    rng = np.random.RandomState(20240610)
    out = {}
    out["landscape_403x297.jpg"] = _encode(
        Image.fromarray(_photo_like(rng, 403, 297)), "JPEG", quality=90
    )
    out["portrait_241x389.png"] = _encode(Image.fromarray(_photo_like(rng, 241, 389)), "PNG")
    out["grey_330x250.jpg"] = _encode(
        Image.fromarray(_photo_like(rng, 330, 250)).convert("L"), "JPEG", quality=85
    )
    rgba = np.dstack(
        [
            _photo_like(rng, 300, 300),
            np.tile(np.linspace(0, 255, 300, dtype=np.float32), (300, 1)).astype(np.uint8),
        ]
    )
    out["rgba_300x300.png"] = _encode(Image.fromarray(rgba, "RGBA"), "PNG")
    out["wide_900x120.png"] = _encode(Image.fromarray(_photo_like(rng, 900, 120)), "PNG")
    out["tiny_97x61.jpg"] = _encode(
        Image.fromarray(_photo_like(rng, 97, 61)), "JPEG", quality=95
    )
    for name in REAL_PHOTOS:
        path = FIXTURE_INPUTS / name
        if path.is_file():
            out[name] = path.read_bytes()
    return out


def preprocess(data, size):
    """The official Swin-Transformer eval transform, written with Pillow and numpy only:
    convert('RGB') -> Resize(int(256/224*size), BICUBIC) on the shorter side -> CenterCrop(size)
    -> /255 -> Normalize(ImageNet mean, std). Returns float32 [3, size, size] (CHW)."""
    img = Image.open(io.BytesIO(data))
    img = img.convert("RGB")
    resize = int((256 / 224) * size)
    w, h = img.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = resize, int(resize * long / short)
    new_w, new_h = (new_short, new_long) if w <= h else (new_long, new_short)
    img = img.resize((new_w, new_h), Image.Resampling.BICUBIC)
    top = int(round((new_h - size) / 2.0))
    left = int(round((new_w - size) / 2.0))
    img = img.crop((left, top, left + size, top + size))
    arr = np.asarray(img, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32)
    arr = arr / np.float32(255.0)
    arr = (arr - IMAGENET_MEAN[:, None, None]) / IMAGENET_STD[:, None, None]
    return np.ascontiguousarray(arr, dtype=np.float32)


def softmax(logits):
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def bytes_tensor(items):
    """numpy object array of bytes, the form both clients serialise as BYTES."""
    arr = np.empty(len(items), dtype=np.object_)
    for i, b in enumerate(items):
        arr[i] = b
    return arr


def serialize_bytes_elements(items):
    """Triton's raw BYTES layout: 4-byte little-endian length, then the bytes, per element."""
    return b"".join(struct.pack("<I", len(b)) + b for b in items)


def parse_classification(entry):
    """'value:index:label' -> (float value, int index, str label, raw value string)."""
    if isinstance(entry, bytes):
        entry = entry.decode("utf-8")
    value, index, label = entry.split(":", 2)
    return float(value), int(index), label, value


def check_classification(entries, values, labels, k):
    """entries: the k strings of one image; values: that output's C numbers (float64, computed by
    the test). Checks format, order (highest first), each value and label, and that the k values
    are the k largest (ties at the cut aside)."""
    assert len(entries) == k, f"{len(entries)} entries, expected {k}"
    parsed = [parse_classification(e) for e in entries]
    indices = [p[1] for p in parsed]
    assert len(set(indices)) == k, f"repeated class index in {entries[:10]}"
    for value, index, label, raw in parsed:
        assert 0 <= index < len(values), index
        frac = raw.split(".")
        assert len(frac) == 2 and len(frac[1]) == 6, f"value {raw!r} not formatted %f"
        assert abs(value - values[index]) <= 1e-6 + 1e-6 * abs(values[index]), (
            f"class {index}: string says {raw}, expected {values[index]:.6f}"
        )
        assert label == labels[index], f"class {index}: label {label!r}, expected {labels[index]!r}"
    got = np.array([values[i] for i in indices])
    # Near-ties (float32 on the server, float64 here) may come in either order.
    tie = 1e-7 + 1e-6 * np.abs(got[:-1])
    assert np.all(np.diff(got) <= tie), f"not sorted highest first: {entries[:10]}"
    expected_top = np.sort(values)[::-1][:k]
    assert np.allclose(got, expected_top, rtol=1e-6, atol=1e-7), (
        "the k values returned are not the k largest"
    )
    # The expected order by numpy argsort (stable), ties aside.
    order = np.argsort(-values, kind="stable")[:k]
    for pos, (i, j) in enumerate(zip(indices, order)):
        if i != j:
            assert abs(values[i] - values[j]) <= 1e-7 + 1e-6 * abs(values[j]), (
                f"position {pos}: class {i}, expected {j}"
            )
