"""`grainloop seg predict IMAGE --model M --out MASK`: write an image's class-id mask.

The mask has the image's height and width and one uint8 class id per pixel (the model's classes, in
order); PNG, TIFF or .npy by the suffix of `--out`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from agents.segmentation.image_input import ImageError, load_image
from agents.segmentation.models import ModelError, load_segmenter

MASK_SUFFIXES = (".png", ".tif", ".tiff", ".npy")
EXIT_BAD_INPUT = 2


def write_mask(mask: np.ndarray, path: str | Path) -> Path:
    """Write an (H, W) uint8 class-id mask as PNG (8-bit grey), TIFF or .npy, chosen by suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in MASK_SUFFIXES:
        raise ImageError(f"{path}: mask must be {', '.join(MASK_SUFFIXES)}")
    mask = np.ascontiguousarray(mask, dtype=np.uint8)
    if suffix == ".png":
        from PIL import Image

        Image.fromarray(mask, mode="L").save(path)
    elif suffix == ".npy":
        np.save(path, mask)
    else:
        import tifffile

        tifffile.imwrite(path, mask)
    return path


def run_predict(args: argparse.Namespace) -> int:
    """Segment `args.image` with `args.model` and write the mask to `args.out`; exit code (2 on bad input)."""
    out = Path(args.out)
    try:
        if out.suffix.lower() not in MASK_SUFFIXES:
            raise ImageError(f"{out}: mask must be {', '.join(MASK_SUFFIXES)}")
        if not out.parent.is_dir():
            raise ImageError(f"{out.parent}: no such directory for the mask")
        segmenter = load_segmenter(args.model)
        image = load_image(args.image)
        mask = segmenter.predict(image)
        write_mask(mask, out)
    except (ImageError, ModelError) as exc:
        print(f"grainloop: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"grainloop: error: cannot write {out}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    fractions = np.bincount(mask.ravel(), minlength=len(segmenter.classes)) / mask.size
    shares = ", ".join(f"{name} {share:.1%}" for name, share in zip(segmenter.classes, fractions, strict=False))
    print(f"wrote {out}: {mask.shape[1]}×{mask.shape[0]} px, {segmenter.name}: {shares}")
    return 0
