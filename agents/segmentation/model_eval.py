"""Quick held-out scores of a segmentation model, for model cards (the full comparison is bench/segmentation.py).

    python -m agents.segmentation.model_eval --model sim-122 --frames 20
    python -m agents.segmentation.model_eval --model nasa-superalloy --images DIR/test --masks DIR/test_annot

Simulator frames come from seeds `HELD_OUT_SEED0 + i` (never used in training). Scores pool pixels over
all images: per-class IoU, mIoU over the classes present in the truth, and boundary F1 — precision is
the share of predicted grain-boundary pixels within `tolerance_px` of a true one, recall the share of
true boundary pixels within `tolerance_px` of a predicted one. With colour masks (γ′ classes) it also
reports the IoU of γ′ (every non-matrix class together) against matrix.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Iterable
from typing import Any

import numpy as np

from agents.segmentation.datasets import folder_samples
from agents.segmentation.metrics import BOUNDARY_CLASS, boundary_hits, confusion_matrix, iou_per_class
from agents.segmentation.models import load_segmenter
from agents.segmentation.segmenter import Segmenter
from agents.segmentation.sim_data import HELD_OUT_SEED0, simulated_survey


def score(
    segmenter: Segmenter, pairs: Iterable[tuple[np.ndarray, np.ndarray]], tolerance_px: float = 2.0
) -> dict[str, Any]:
    """Pooled scores of `segmenter` on (image, truth mask) pairs, with the mean time per image."""
    n = len(segmenter.classes)
    confusion = np.zeros((n, n), np.int64)
    hits = np.zeros(4, np.int64)
    seconds, count = 0.0, 0
    for image, truth in pairs:
        started = time.perf_counter()
        predicted = segmenter.predict(image)
        seconds += time.perf_counter() - started
        count += 1
        confusion += confusion_matrix(truth, predicted, n)
        if len(segmenter.classes) > BOUNDARY_CLASS and segmenter.classes[BOUNDARY_CLASS] == "grain_boundary":
            hits += boundary_hits(truth, predicted, tolerance_px)
    has_boundaries = len(segmenter.classes) > BOUNDARY_CLASS and segmenter.classes[BOUNDARY_CLASS] == "grain_boundary"
    iou = iou_per_class(confusion)
    present = confusion.sum(1) > 0
    precision = hits[0] / hits[1] if hits[1] else float("nan")
    recall = hits[2] / hits[3] if hits[3] else float("nan")
    tp_gp = confusion[1:, 1:].sum()
    union_gp = confusion[1:, :].sum() + confusion[:, 1:].sum() - tp_gp
    result = {
        "images": count,
        "classes": list(segmenter.classes),
        "iou": {c: (None if np.isnan(v) else round(float(v), 4)) for c, v in zip(segmenter.classes, iou, strict=True)},
        "miou": round(float(np.nanmean(np.where(present, np.nan_to_num(iou), np.nan))), 4),
        "pixel_accuracy": round(float(np.trace(confusion) / confusion.sum()), 4),
        "boundary_precision": round(float(precision), 4),
        "boundary_recall": round(float(recall), 4),
        "boundary_f1": round(float(2 * precision * recall / (precision + recall)), 4) if hits[1] and hits[3] else None,
        "non_matrix_iou": round(float(tp_gp / union_gp), 4) if union_gp else None,
        "truth_fractions": [round(float(v), 4) for v in confusion.sum(1) / confusion.sum()],
        "seconds_per_image": round(seconds / max(count, 1), 3),
    }
    if not has_boundaries:
        for key in ("boundary_precision", "boundary_recall", "boundary_f1"):
            del result[key]
    return result


def simulated_pairs(n_frames: int, side_px: int = 512) -> Iterable[tuple[np.ndarray, np.ndarray]]:
    for i in range(n_frames):
        survey = simulated_survey(HELD_OUT_SEED0 + i, (side_px, side_px))
        yield survey.image, survey.label


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="sim-122")
    parser.add_argument("--frames", type=int, default=20, help="held-out simulator frames")
    parser.add_argument("--side-px", type=int, default=512)
    parser.add_argument("--images", help="folder of images (instead of simulator frames)")
    parser.add_argument("--masks", help="folder of masks matching --images")
    parser.add_argument("--tolerance-px", type=float, default=2.0)
    args = parser.parse_args(argv)
    segmenter = load_segmenter(args.model)
    if args.images:
        samples, _ = folder_samples(args.images, args.masks, len(segmenter.classes))
        # already normalised; the segmenter's percentile normalisation leaves them as they are
        result = score(segmenter, [(s.image, s.mask) for s in samples], args.tolerance_px)
        result["data"] = {"images": args.images, "masks": args.masks}
    else:
        result = score(segmenter, simulated_pairs(args.frames, args.side_px), args.tolerance_px)
        result["data"] = {"held_out_seeds": [HELD_OUT_SEED0, HELD_OUT_SEED0 + args.frames - 1], "side_px": args.side_px}
    result["model"] = args.model
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
