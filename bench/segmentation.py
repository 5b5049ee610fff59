"""Segmentation of STEM images: the U-Net against the classical baseline, on held-out simulated frames and NASA Super1.

Simulated frames (seeds from `HELD_OUT_SEED0` upwards, never seen in training; default 30 frames at
512²), for every model in the same run — `sim-122` (U-Net), `classical` (threshold/Sobel/watershed) and
`truth-label` (the true label map through the same grain pipeline: the statistics pipeline's own error):

- IoU per class pooled over frames (intersection and union summed), mIoU over classes present in truth;
- boundary F1 with a 2-px tolerance (precision: predicted boundary pixels within 2 px of a true one;
  recall the other way), pooled over frames;
- grain size: per frame the relative error of the median equivalent diameter of interior matrix grains
  against the truth (from the simulator's `grain_id`, same edge rule; frames with fewer than
  `MIN_TRUE_GRAINS` interior grains are skipped), and the two-sample KS statistic of the distributions;
  the medians over frames are reported;
- porosity: median absolute error (percentage points).

Frames go to the segmenters as the agent gets them, counts without acquisition metadata: a model with
dose channels takes the dose from the vacuum in the frame (pores), else its training dose (the STEM
device's default), see `agents/segmentation/input_features.py`.

NASA Super1 `test/` (read in place, never copied): IoU of γ′ (secondary ∪ tertiary) and of the matrix, for
`nasa-superalloy` and a 1-channel Otsu baseline (its polarity, γ′ bright or dark, chosen on `train/`).

Throughput: images per second at 512² and 1024², segmentation alone and segmentation + statistics.

    .venv/bin/python bench/segmentation.py [--frames 30] [--size 512] [--models sim-122,classical]
        [--nasa-dir ../shared/data/nasa-superalloy] [--no-nasa] [--no-throughput] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from scipy import ndimage as ndi
from scipy.stats import ks_2samp

from agents.segmentation.grains import find_grains, grain_map_from_ids, grain_statistics
from agents.segmentation.metrics import boundary_f1, boundary_hits, confusion_matrix, iou_per_class
from agents.segmentation.segmenter import NASA_CLASSES, STEM_CLASSES, Segmenter
from agents.segmentation.sim_data import HELD_OUT_SEED0, simulated_survey

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NASA_DIR = ROOT.parent / "shared" / "data" / "nasa-superalloy"
BOUNDARY_TOLERANCE_PX = 2.0
MIN_TRUE_GRAINS = 5
TRUTH = "truth-label"
TARGETS = {
    "boundary_f1": (">=", 0.90),
    "miou": (">=", 0.85),
    "grain_size_median_rel_error": ("<=", 0.10),
    "nasa_gamma_prime_iou": (">=", 0.85),
    "seconds_1024_with_statistics": ("<=", 2.0),
}
"""The issue's Done-when, for the U-Net (sim-122 / nasa-superalloy)."""


# -- metrics -------------------------------------------------------------------------------------------


def true_diameters_nm(survey: Any) -> np.ndarray:
    gm = grain_map_from_ids(survey.grain_id, survey.label, STEM_CLASSES)
    return grain_statistics(survey.label, STEM_CLASSES, survey.pixel_nm, grain_map=gm).equivalent_diameters_nm


# -- simulated frames ----------------------------------------------------------------------------------


def load_models(names: list[str], note: Any) -> dict[str, Segmenter | None]:
    """Segmenters by name; a model whose file is missing is reported and left out."""
    from agents.segmentation.models import ModelError, load_segmenter

    models: dict[str, Segmenter | None] = {}
    for name in names:
        try:
            models[name] = load_segmenter(name)
        except ModelError as exc:
            note(f"{name}: skipped ({exc})")
    models[TRUTH] = None
    return models


def run_simulated(models: dict[str, Segmenter | None], frames: int, size: int, progress: Progress) -> dict[str, Any]:
    n = len(STEM_CLASSES)
    acc = {
        m: {"cm": np.zeros((n, n), np.int64), "bf": np.zeros(4, np.int64), "size_err": [], "ks": [], "por_err": []}
        for m in models
    }
    task = progress.add_task("simulated frames", total=frames)
    for i in range(frames):
        survey = simulated_survey(HELD_OUT_SEED0 + i, shape=(size, size))
        d_true = true_diameters_nm(survey)
        true_porosity = float(np.mean(survey.label == STEM_CLASSES.index("pore")))
        for name, segmenter in models.items():
            pred = survey.label if segmenter is None else segmenter.predict(survey.image)
            a = acc[name]
            a["cm"] += confusion_matrix(survey.label, pred, n)
            a["bf"] += boundary_hits(survey.label, pred, BOUNDARY_TOLERANCE_PX)
            stats = grain_statistics(pred, STEM_CLASSES, survey.pixel_nm)
            a["por_err"].append(abs(stats.porosity - true_porosity))
            d = stats.equivalent_diameters_nm
            if len(d_true) >= MIN_TRUE_GRAINS:
                if len(d):
                    a["size_err"].append(abs(float(np.median(d)) / float(np.median(d_true)) - 1.0))
                    a["ks"].append(float(ks_2samp(d, d_true, method="asymp").statistic))
                else:
                    a["size_err"].append(1.0)
                    a["ks"].append(1.0)
        progress.advance(task)
    out: dict[str, Any] = {}
    for name, a in acc.items():
        per_class = iou_per_class(a["cm"])
        iou = {c: (None if np.isnan(v) else float(v)) for c, v in zip(STEM_CLASSES, per_class, strict=True)}
        present = [v for v in iou.values() if v is not None]
        out[name] = {
            "miou": float(np.mean(present)) if present else None,
            "iou": iou,
            "boundary_f1": boundary_f1(a["bf"]),
            "grain_size_median_rel_error": float(np.median(a["size_err"])) if a["size_err"] else None,
            "grain_size_mean_rel_error": float(np.mean(a["size_err"])) if a["size_err"] else None,
            "ks_median": float(np.median(a["ks"])) if a["ks"] else None,
            "porosity_abs_error_median": float(np.median(a["por_err"])),
            "frames_with_grain_sizes": len(a["size_err"]),
        }
    return out


# -- NASA Super1 ---------------------------------------------------------------------------------------


def nasa_pairs(root: Path, split: str) -> list[tuple[np.ndarray, np.ndarray]]:
    from agents.segmentation.datasets import decode_mask, read_mask_file
    from agents.segmentation.image_input import load_image

    pairs = []
    for image_path in sorted((root / split).glob("*.tif")):
        mask_path = root / f"{split}_annot" / f"{image_path.stem}_mask.tif"
        mask = decode_mask(read_mask_file(mask_path), len(NASA_CLASSES), str(mask_path))
        pairs.append((load_image(image_path), mask))
    return pairs


def otsu_gamma_prime(image: np.ndarray, bright: bool) -> np.ndarray:
    from skimage.filters import threshold_otsu

    smooth = ndi.gaussian_filter(image[0], 1.0)
    above = smooth > threshold_otsu(smooth)
    return (above if bright else ~above).astype(np.uint8)


def gamma_prime_iou(pred_gp: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """IoU of γ′ (classes 1 ∪ 2) and of the matrix (class 0)."""
    t = truth > 0
    p = pred_gp > 0
    gp = np.count_nonzero(p & t) / max(np.count_nonzero(p | t), 1)
    mx = np.count_nonzero(~p & ~t) / max(np.count_nonzero(~p | ~t), 1)
    return float(gp), float(mx)


def run_nasa(root: Path, note: Any) -> dict[str, Any]:
    from agents.segmentation.models import ModelError, load_segmenter

    test = nasa_pairs(root, "test")
    train = nasa_pairs(root, "train")
    # the baseline's one learned bit: is γ′ the bright or the dark Otsu class (majority vote on train/)
    votes = [gamma_prime_iou(otsu_gamma_prime(im, True), m)[0] > gamma_prime_iou(otsu_gamma_prime(im, False), m)[0]
             for im, m in train]  # fmt: skip
    bright = sum(votes) * 2 >= len(votes)
    results: dict[str, Any] = {"images": len(test)}
    scores = [gamma_prime_iou(otsu_gamma_prime(im, bright), m) for im, m in test]
    results["classical-otsu"] = {"gamma_prime_iou": float(np.mean([s[0] for s in scores])),
                                 "matrix_iou": float(np.mean([s[1] for s in scores])),
                                 "gamma_prime_bright": bool(bright)}  # fmt: skip
    try:
        model = load_segmenter("nasa-superalloy")
    except ModelError as exc:
        note(f"nasa-superalloy: skipped ({exc})")
        return results
    scores = [gamma_prime_iou(model.predict(im[: model.in_channels]), m) for im, m in test]
    results["nasa-superalloy"] = {"gamma_prime_iou": float(np.mean([s[0] for s in scores])),
                                  "matrix_iou": float(np.mean([s[1] for s in scores]))}  # fmt: skip
    return results


# -- throughput ----------------------------------------------------------------------------------------


def run_throughput(models: dict[str, Segmenter | None], sizes: list[int], repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for size in sizes:
        image = simulated_survey(HELD_OUT_SEED0 + 3, shape=(size, size)).image
        for name, segmenter in models.items():
            if segmenter is None:
                continue
            segmenter.predict(image)  # warm-up: first calls build caches, pick kernels
            seg_s, total_s = [], []
            for _ in range(repeats):
                t0 = time.perf_counter()
                pred = segmenter.predict(image)
                t1 = time.perf_counter()
                grain_statistics(pred, STEM_CLASSES, 2.0, grain_map=find_grains(pred, STEM_CLASSES))
                t2 = time.perf_counter()
                seg_s.append(t1 - t0)
                total_s.append(t2 - t0)
            out.setdefault(name, {})[str(size)] = {
                "segmentation_s": float(np.median(seg_s)),
                "with_statistics_s": float(np.median(total_s)),
                "images_per_s": 1.0 / float(np.median(seg_s)),
                "images_per_s_with_statistics": 1.0 / float(np.median(total_s)),
            }
    return out


# -- report --------------------------------------------------------------------------------------------


def verdict(key: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    op, target = TARGETS[key]
    met = value >= target if op == ">=" else value <= target
    return f"{'met' if met else 'UNMET'} ({op} {target:g})"


def targets(summary: dict[str, Any]) -> dict[str, Any]:
    sim = summary.get("simulated", {}).get("sim-122", {})
    nasa = summary.get("nasa", {}).get("nasa-superalloy", {})
    speed = summary.get("throughput", {}).get("sim-122", {}).get("1024", {})
    values = {
        "boundary_f1": sim.get("boundary_f1"),
        "miou": sim.get("miou"),
        "grain_size_median_rel_error": sim.get("grain_size_median_rel_error"),
        "nasa_gamma_prime_iou": nasa.get("gamma_prime_iou"),
        "seconds_1024_with_statistics": speed.get("with_statistics_s"),
    }
    return {k: {"value": v, "verdict": verdict(k, v)} for k, v in values.items()}


def fmt(value: float | None, spec: str = ".3f") -> str:
    return "—" if value is None else f"{value:{spec}}"


def print_tables(summary: dict[str, Any]) -> None:
    console = Console(width=max(140, Console().width))
    sim = summary.get("simulated")
    if sim:
        table = Table(title=f"held-out simulated frames: {summary['frames']} × {summary['size']}²")
        for col in ("model", "mIoU", *STEM_CLASSES, "boundary F1", "size err (med)", "KS (med)", "porosity err"):
            table.add_column(col, justify="right")
        for name, r in sim.items():
            table.add_row(
                name, fmt(r["miou"]), *(fmt(r["iou"][c], ".2f") for c in STEM_CLASSES), fmt(r["boundary_f1"]),
                fmt(r["grain_size_median_rel_error"], ".1%"), fmt(r["ks_median"]),
                fmt(r["porosity_abs_error_median"], ".2%"),
            )  # fmt: skip
        console.print(table)
        if "sim-122" in sim and "classical" in sim:
            u, c = sim["sim-122"], sim["classical"]
            console.print(
                f"U-Net vs classical: mIoU {fmt(u['miou'])} vs {fmt(c['miou'])}, boundary F1 "
                f"{fmt(u['boundary_f1'])} vs {fmt(c['boundary_f1'])}, size error "
                f"{fmt(u['grain_size_median_rel_error'], '.1%')} vs {fmt(c['grain_size_median_rel_error'], '.1%')}"
            )
    nasa = summary.get("nasa")
    if nasa:
        table = Table(title=f"NASA Super1 test/ ({nasa['images']} images)")
        for col in ("model", "γ′ IoU", "matrix IoU"):
            table.add_column(col, justify="right")
        for name in ("nasa-superalloy", "classical-otsu"):
            if name in nasa:
                table.add_row(name, fmt(nasa[name]["gamma_prime_iou"]), fmt(nasa[name]["matrix_iou"]))
        console.print(table)
    speed = summary.get("throughput")
    if speed:
        table = Table(title="throughput (median of repeats)")
        for col in ("model", "size", "images/s", "images/s with stats", "s with stats"):
            table.add_column(col, justify="right")
        for name, by_size in speed.items():
            for size, r in by_size.items():
                table.add_row(name, f"{size}²", f"{r['images_per_s']:.2f}", f"{r['images_per_s_with_statistics']:.2f}",
                              f"{r['with_statistics_s']:.2f}")  # fmt: skip
        console.print(table)
        if "sim-122" in speed and "classical" in speed:
            for size in speed["sim-122"]:
                ratio = speed["sim-122"][size]["images_per_s"] / speed["classical"][size]["images_per_s"]
                console.print(f"U-Net / classical speed at {size}²: {ratio:.2f}×")
    table = Table(title="Done-when targets (U-Net)")
    for col in ("target", "value", "verdict"):
        table.add_column(col)
    for key, r in summary["targets"].items():
        table.add_row(key, fmt(r["value"]), r["verdict"])
    console.print(table)
    for line in summary.get("notes", []):
        console.print(f"note: {line}")


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30, help="held-out simulated frames")
    parser.add_argument("--size", type=int, default=512, help="frame side (px)")
    parser.add_argument("--models", default="sim-122,classical")
    parser.add_argument("--nasa-dir", type=Path, default=DEFAULT_NASA_DIR)
    parser.add_argument("--no-nasa", action="store_true")
    parser.add_argument("--no-throughput", action="store_true")
    parser.add_argument("--throughput-sizes", default="512,1024")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats per model and size")
    parser.add_argument("--quick", action="store_true", help="8 frames, one timed repeat (< 2 min)")
    parser.add_argument("--json", action="store_true", help="one summary object on stdout")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1), help="torch threads")
    args = parser.parse_args(argv)
    if args.quick:
        args.frames, args.repeats = 8, 1
    if args.frames < 1 or args.size < 64:
        parser.error("--frames ≥ 1 and --size ≥ 64")
    notes: list[str] = []
    t0 = time.perf_counter()
    import torch

    torch.set_num_threads(max(args.threads, 1))
    models = load_models([m for m in args.models.split(",") if m], notes.append)
    summary: dict[str, Any] = {"frames": args.frames, "size": args.size, "quick": args.quick, "notes": notes}
    with Progress(transient=True, console=Console(stderr=True)) as progress:
        summary["simulated"] = run_simulated(models, args.frames, args.size, progress)
        if not args.no_nasa:
            if args.nasa_dir.is_dir():
                summary["nasa"] = run_nasa(args.nasa_dir, notes.append)
            else:
                notes.append(f"NASA data not found at {args.nasa_dir}: skipped")
        if not args.no_throughput:
            sizes = [int(s) for s in args.throughput_sizes.split(",") if s]
            summary["throughput"] = run_throughput(models, sizes, args.repeats)
    summary["targets"] = targets(summary)
    summary["wall_s"] = time.perf_counter() - t0
    summary["load_average_1min"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(summary))
    else:
        print_tables(summary)
        print(f"\nwall {summary['wall_s']:.0f} s", file=sys.stderr)
    return summary


if __name__ == "__main__":
    main()
