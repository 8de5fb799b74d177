#!/usr/bin/env python3
"""How far Hugging Face's default image processor is from the PIL-exact pipeline swin-serve runs.

transformers 5's `ViTImageProcessor` resizes with torchvision on uint8 tensors (its "torchvision
backend"); swin-serve reproduces the PIL backend (`ViTImageProcessorPil`: PIL resize, float64
rescale, float32 normalize), bit for bit (tests/preprocess_pipelines.rs checks that against the
library). This script feeds the committed test photos (tests/fixtures/preprocess/inputs) through
both, for the preprocessor configs of microsoft/swinv2-tiny-patch4-window8-256 and
microsoft/swin-tiny-patch4-window7-224, and reports

  * the uint8 difference of the resized images (max, share of values that differ),
  * the largest difference of the normalised tensors,
  * the largest relative logit difference, max|l_torchvision - l_pil| / max|l_pil|, of a random
    SwinV2-T / Swin-T (released sizes, `Swinv2ForImageClassification` /
    `SwinForImageClassification`, seed 0, 1000 classes) fed with each.

Nothing is downloaded. Run: OMP_NUM_THREADS=2 python benches/hf_processor_difference.py
(a Python with torch, torchvision, transformers 5 and Pillow). Results: docs/performance.md.
"""

import glob
import os
import platform
import sys

import numpy as np
import PIL
import torch
import torchvision
import transformers
from PIL import Image
from transformers import (SwinConfig, SwinForImageClassification, Swinv2Config,
                          Swinv2ForImageClassification)
from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil
from transformers.models.vit.image_processing_vit import ViTImageProcessor

INPUTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "preprocess", "inputs")

IMAGENET = {"image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
CASES = [
    ("swinv2-tiny-patch4-window8-256",
     {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_processor_type": "ViTImageProcessor",
      "resample": 3, "rescale_factor": 0.00392156862745098, "size": {"height": 256, "width": 256}, **IMAGENET},
     lambda: Swinv2ForImageClassification(Swinv2Config(image_size=256, window_size=8, num_labels=1000))),
    ("swin-tiny-patch4-window7-224",
     {"do_normalize": True, "do_resize": True, "feature_extractor_type": "ViTFeatureExtractor", "resample": 3,
      "size": 224, **IMAGENET},
     lambda: SwinForImageClassification(SwinConfig(image_size=224, window_size=7, num_labels=1000))),
]


def cpu_name():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    torch.set_num_threads(max(1, int(os.environ.get("OMP_NUM_THREADS", "2"))))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}, "
          f"Pillow {PIL.__version__}; {cpu_name()}")
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(INPUTS, "*")))
    # The photos and the larger synthetic images (the tiny ones say nothing about resampling).
    images = []
    for name in names:
        with Image.open(os.path.join(INPUTS, name)) as img:
            rgb = img.convert("RGB")
        if min(rgb.size) >= 90:
            images.append((name, rgb))
    print(f"{len(images)} images: {', '.join(n for n, _ in images)}")
    summary = []
    print()
    print("| model | image | size | uint8: max diff | values that differ | by more than 1 | logits: max relative diff |")
    print("|---|---|---|---|---|---|---|")
    for model_name, cfg, make_model in CASES:
        fast = ViTImageProcessor.from_dict(dict(cfg))
        pil = ViTImageProcessorPil.from_dict(dict(cfg))
        assert fast.backend == "torchvision" and pil.backend == "pil"
        torch.manual_seed(0)
        model = make_model().eval()
        max_u8, differing, total, max_tensor, max_rel = 0, 0, 0, 0.0, 0.0
        for name, img in images:
            u8_fast = fast(img, do_rescale=False, do_normalize=False, return_tensors="pt")["pixel_values"][0]
            u8_pil = torch.from_numpy(pil(img, do_rescale=False, do_normalize=False, return_tensors="np")["pixel_values"][0])
            assert u8_fast.dtype == torch.uint8 and u8_pil.dtype == torch.uint8
            d = (u8_fast.int() - u8_pil.int()).abs()
            max_u8 = max(max_u8, int(d.max()))
            image_differing = float((d > 0).double().mean())
            image_above_one = float((d > 1).double().mean())
            differing += int((d > 0).sum())
            total += d.numel()
            t_fast = fast(img, return_tensors="pt")["pixel_values"]
            t_pil = torch.from_numpy(pil(img, return_tensors="np")["pixel_values"])
            max_tensor = max(max_tensor, float((t_fast - t_pil).abs().max()))
            with torch.no_grad():
                l_fast = model(pixel_values=t_fast).logits.double()
                l_pil = model(pixel_values=t_pil).logits.double()
            rel = float((l_fast - l_pil).abs().max() / l_pil.abs().max())
            max_rel = max(max_rel, rel)
            print(f"| {model_name} | {name} | {img.width}x{img.height} | {int(d.max())} | {100 * image_differing:.2f}% "
                  f"| {100 * image_above_one:.3f}% | {rel:.2e} |")
            sys.stdout.flush()
        summary.append(f"| {model_name} | {len(images)} | {max_u8} | {100.0 * differing / total:.2f}% | {max_tensor:.4f} "
                       f"| {max_rel:.2e} |")
    print()
    print("| model (preprocessor_config.json) | images | uint8: max diff | uint8: values that differ | tensor: max abs diff | logits: max relative diff |")
    print("|---|---|---|---|---|---|")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
