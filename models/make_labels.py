#!/usr/bin/env python3
"""Write models/imagenet_labels.txt: the 1000 ImageNet-1k class names, one per line, line index = class id.

The names are torchvision's (`torchvision.models._meta._IMAGENET_CATEGORIES`), the same order as the
official Swin checkpoints' classifier head. Usage: python3 models/make_labels.py [OUT]
"""
import sys

from torchvision.models._meta import _IMAGENET_CATEGORIES as CATEGORIES

assert len(CATEGORIES) == 1000
out = sys.argv[1] if len(sys.argv) > 1 else "models/imagenet_labels.txt"
with open(out, "w") as f:
    f.write("\n".join(CATEGORIES) + "\n")
