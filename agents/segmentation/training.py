"""`grainloop seg train`: train or fine-tune the U-Net, keep the best checkpoint, write a model file.

Loss: class-weighted cross-entropy plus soft Dice,

    L = −Σ_i w_{y_i} log p_{i,y_i} / Σ_i w_{y_i}
        + λ · (1 − 1/|K| Σ_{c∈K} (2 Σ_i p_ic y_ic + 1) / (Σ_i p_ic + Σ_i y_ic + 1)),

with w_c ∝ f_c^(−1/2) (f_c the class's pixel fraction, weights capped at 10× the smallest) and K the
classes present in the batch. The grain-boundary class is 1-2 px wide and a few % of the pixels;
cross-entropy alone thins it into gaps, and Dice rewards getting its whole extent.

Data: simulator frames (the default; seeds `seed·100000 + i`, all below `HELD_OUT_SEED0`, the last
`SIM_VAL_FRAMES` of them for validation; read from the on-disk frame cache when simulated before) or
`--images DIR --masks DIR` folders (validation from `--val-images/--val-masks`, else a seeded fifth of
the images). After every epoch the model is scored on the validation set (mean IoU over the classes
present) and the best epoch's weights are kept; a STEM model then gets its boundary threshold
calibrated on the same validation frames (`calibration.py`).

Speed (2 shared cores): the forward pass runs under bfloat16 autocast where the CPU has native bf16,
tensors channels-last — 0.40 s instead of 0.96 s per step of 8 × 192² at one thread (fp32 and bf16
trained alike: validation boundary F1 0.79 and 0.81, mIoU 0.50 and 0.49 after the same 500 steps).
Float32 subnormals, which slowed the orientation code 24×, do not occur here: none in the weights,
activations, gradients or Adam moments after 30 training steps nor in a trained model, and
`torch.set_flush_denormal(True)` did not change the step time.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import json
import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional

from agents.segmentation.calibration import calibrate_boundary_threshold
from agents.segmentation.datasets import (
    CropSampler,
    Sample,
    class_frequencies,
    dilate_boundaries,
    folder_samples,
    simulated_samples,
)
from agents.segmentation.image_input import ImageError
from agents.segmentation.input_features import (
    PERCENTILE,
    STEM_FEATURES,
    dose_channel_indices,
    image_channels_for,
)
from agents.segmentation.metrics import BOUNDARY_CLASS, confusion_matrix, iou_per_class
from agents.segmentation.models import (
    ModelError,
    model_record,
    network_from_record,
    read_model_record,
    resolve_model_path,
    save_model,
)
from agents.segmentation.segmenter import NASA_CLASSES, STEM_CLASSES
from agents.segmentation.sim_data import HELD_OUT_SEED0
from agents.segmentation.unet import UNet, predict_logits

TRAIN_THREADS = 1
"""Threads torch uses while training unless `--threads` says otherwise. On the lab's 2 cores one thread
trained the STEM model faster than two, even on an otherwise idle machine (1115 s against 1411 s for the
same 72 epochs, 2026-12-07), and faster still when other jobs load the machine."""
SEED_BLOCK = 100_000
"""Simulator seeds of training seed s are s·SEED_BLOCK + i."""
EXIT_BAD_INPUT = 2


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of one training run (recorded in the model file)."""

    epochs: int
    steps_per_epoch: int
    crop_px: int = 256
    batch_size: int = 8
    learning_rate: float = 3e-3
    weight_decay: float = 1e-4
    dice_weight: float = 1.0
    max_class_weight_ratio: float = 10.0
    boundary_dilation_px: int = 0
    """Widen the grain-boundary class of training masks by this much (`datasets.dilate_boundaries`)."""
    boundary_crop_share: float = 0.0
    """Share of the training crops drawn around a random grain-boundary pixel (STEM classes only)."""
    max_noise_sigma: float = 0.08
    """Upper end of the augmentation's added Gaussian noise (σ drawn uniformly from 0)."""
    bf16: bool = True
    """Forward pass under bfloat16 autocast (weights, loss and optimiser stay float32) where the CPU has
    native bf16 (AVX512-BF16/AMX); see the module docstring."""


SIM_TRAIN_FRAMES = 368
SIM_VAL_FRAMES = 8
SIM_FRAME_PX = 512
SIM_DEFAULT = TrainConfig(
    epochs=72, steps_per_epoch=50, crop_px=192, boundary_dilation_px=1, boundary_crop_share=0.5, max_noise_sigma=0.15
)
FOLDER_DEFAULT = TrainConfig(epochs=40, steps_per_epoch=20, learning_rate=2e-3)


def class_weights(frequencies: np.ndarray, max_ratio: float) -> torch.Tensor:
    """w_c ∝ f_c^(−1/2), capped at `max_ratio` × the smallest, mean 1 over the classes (absent ones too)."""
    f = np.clip(frequencies, 1e-6, None)
    w = f**-0.5
    w = np.minimum(w, w.min() * max_ratio)
    return torch.tensor(w / w.mean(), dtype=torch.float32)


def segmentation_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: torch.Tensor, dice_weight: float
) -> torch.Tensor:
    """Weighted cross-entropy + `dice_weight` × (1 − soft Dice over the classes present)."""
    ce = functional.cross_entropy(logits, target, weight=weights)
    if dice_weight <= 0:
        return ce
    probs = torch.softmax(logits, dim=1)
    one_hot = functional.one_hot(target, logits.shape[1]).permute(0, 3, 1, 2).to(probs.dtype)
    dims = (0, 2, 3)
    intersection = (probs * one_hot).sum(dims)
    truth = one_hot.sum(dims)
    dice = (2 * intersection + 1) / (probs.sum(dims) + truth + 1)
    present = truth > 0
    return ce + dice_weight * (1 - dice[present].mean())


def bf16_autocast() -> Any:
    """A factory of bfloat16 autocast contexts on a CPU with native bf16, else of null contexts."""
    native = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)()
    if not native:
        return contextlib.nullcontext
    return lambda: torch.autocast("cpu", dtype=torch.bfloat16)


def evaluate(model: UNet, samples: Sequence[Sample]) -> dict[str, Any]:
    """Pooled confusion over `samples` → per-class IoU and mIoU over the classes present in the truth."""
    n = model.n_classes
    confusion = np.zeros((n, n), np.int64)
    for sample in samples:
        logits = predict_logits(model, np.asarray(sample.image, dtype=np.float32))
        confusion += confusion_matrix(sample.mask, logits.argmax(0).numpy(), n)
    iou = iou_per_class(confusion)
    present = confusion.sum(1) > 0
    return {
        "miou": float(np.nanmean(np.where(present, np.nan_to_num(iou), np.nan))),
        "iou": [None if math.isnan(v) else round(float(v), 4) for v in iou],
        "pixel_accuracy": float(np.trace(confusion) / max(confusion.sum(), 1)),
    }


def initialised_network(
    init: str | None, in_channels: int, classes: tuple[str, ...], seed: int
) -> tuple[UNet, dict[str, Any]]:
    """A fresh UNet (weights drawn from `seed`), or one whose weights come from model `init` wherever the
    shapes agree.

    A model with other channels or classes keeps its inner layers; the first and last layers start afresh.
    """
    torch.manual_seed(seed)
    if init is None:
        return UNet(in_channels, len(classes)), {}
    path = resolve_model_path(init)
    record = read_model_record(path)
    source = network_from_record(record, str(path))
    model = UNet(in_channels, len(classes), source.widths, source.stem_stride)
    own = model.state_dict()
    taken = {k: v for k, v in source.state_dict().items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(taken, strict=False)
    fresh = sorted({k.rsplit(".", 1)[0] for k in own if k not in taken})
    return model, {"init": str(init), "init_name": record.get("name"), "reinitialised_layers": fresh}


def _folder_classes(samples: Sequence[Sample], colour: bool, init: str | None) -> tuple[str, ...]:
    if colour:
        return NASA_CLASSES
    largest = max(int(s.mask.max()) for s in samples)
    if init is not None:
        init_classes = tuple(read_model_record(resolve_model_path(init))["classes"])
        if largest < len(init_classes):
            return init_classes
    if largest < len(STEM_CLASSES):
        return STEM_CLASSES
    return tuple(f"class_{i}" for i in range(largest + 1))


def _split(samples: list[Sample], seed: int) -> tuple[list[Sample], list[Sample]]:
    if len(samples) < 2:
        return samples, samples  # one image: validate on itself (the card says so)
    order = np.random.default_rng([seed, 0x5B17]).permutation(len(samples))
    n_val = max(1, len(samples) // 5)
    return [samples[i] for i in order[n_val:]], [samples[i] for i in order[:n_val]]


def train(
    train_samples: Sequence[Sample],
    val_samples: Sequence[Sample],
    model: UNet,
    config: TrainConfig,
    seed: int,
    progress: Any | None = None,
    intensity_channels: int | None = None,
    dose_channels: tuple[int, ...] = (),
    focus_class: int | None = None,
) -> tuple[UNet, dict[str, Any]]:
    """Train `model` in place; return the best-validation copy and the training history.

    `intensity_channels`: leading input channels that are percentile-scaled intensities; `dose_channels`:
    channels on an absolute scale (see `CropSampler`); `focus_class`: the class that
    `config.boundary_crop_share` of the crops are drawn around.
    """
    torch.manual_seed(seed)
    frequencies = class_frequencies(train_samples, model.n_classes)
    weights = class_weights(frequencies, config.max_class_weight_ratio)
    # crops no larger than the smallest image (rounded to the network's size multiple)
    smallest_px = min(min(s.mask.shape) for s in train_samples)
    crop_px = max(model.size_multiple, min(config.crop_px, smallest_px) // model.size_multiple * model.size_multiple)
    sampler = CropSampler(
        train_samples,
        crop_px,
        seed,
        intensity_channels=intensity_channels,
        dose_channels=dose_channels,
        focus_class=focus_class,
        focus_share=config.boundary_crop_share,
        max_noise_sigma=config.max_noise_sigma,
    )
    autocast = bf16_autocast() if config.bf16 else contextlib.nullcontext
    model.to(memory_format=torch.channels_last)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    total_steps = config.epochs * config.steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, config.learning_rate, total_steps=total_steps)
    best: dict[str, Any] = {"miou": -1.0}
    best_state = copy.deepcopy(model.state_dict())
    history = []
    task = progress.add_task("training", total=total_steps) if progress is not None else None
    for epoch in range(config.epochs):
        model.train()
        losses = []
        for _ in range(config.steps_per_epoch):
            images, masks = sampler.batch(config.batch_size)
            with autocast():
                logits = model(images.contiguous(memory_format=torch.channels_last))
            loss = segmentation_loss(logits.float(), masks, weights, config.dice_weight)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()
            losses.append(float(loss.detach()))
            if progress is not None:
                progress.update(task, advance=1, description=f"epoch {epoch + 1}/{config.epochs} loss {loss:.3f}")
        scores = evaluate(model, val_samples)
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), **scores})
        if scores["miou"] > best["miou"]:
            best = {"epoch": epoch + 1, **scores}
            best_state = copy.deepcopy(model.state_dict())
        if progress is not None:
            progress.update(task, description=f"epoch {epoch + 1}/{config.epochs} val mIoU {scores['miou']:.3f}")
            progress.console.print(
                f"epoch {epoch + 1}/{config.epochs}: train loss {history[-1]['train_loss']:.3f}, "
                f"val mIoU {scores['miou']:.3f}, IoU {scores['iou']}",
                highlight=False,
            )
    model.load_state_dict(best_state)
    model.eval()
    return model, {"best": best, "history": history, "class_frequencies": frequencies.round(5).tolist()}


def _config_for(args: argparse.Namespace, default: TrainConfig) -> TrainConfig:
    epochs = default.epochs if args.epochs is None else int(args.epochs)
    if epochs < 1:
        raise ImageError(f"--epochs must be ≥ 1, got {epochs}")
    steps = getattr(args, "steps_per_epoch", None) or default.steps_per_epoch
    return TrainConfig(**{**asdict(default), "epochs": epochs, "steps_per_epoch": int(steps)})


def _load_data(
    args: argparse.Namespace, progress: Any | None
) -> tuple[list[Sample], list[Sample], dict[str, Any], dict[str, Any]]:
    """Training and validation samples, a description of the data, and the normalisation they went through."""
    if bool(args.images) != bool(args.masks):
        raise ImageError("--images and --masks go together")
    if args.images:
        normalisation = PERCENTILE
        samples, colour = folder_samples(args.images, args.masks)
        if args.init is not None:  # images like the init model's keep its normalisation (and first layer)
            init_record = read_model_record(resolve_model_path(args.init))
            init_normalisation = init_record.get("normalisation") or PERCENTILE
            if init_record.get("in_channels") == samples[0].image.shape[0] and init_normalisation != PERCENTILE:
                normalisation = init_normalisation
                samples, colour = folder_samples(args.images, args.masks, normalisation=normalisation)
        val_images, val_masks = getattr(args, "val_images", None), getattr(args, "val_masks", None)
        if bool(val_images) != bool(val_masks):
            raise ImageError("--val-images and --val-masks go together")
        source = {"images": str(args.images), "masks": str(args.masks), "colour_masks": colour}
        if val_images:
            val, val_colour = folder_samples(val_images, val_masks, normalisation=normalisation)
            if val_colour != colour:
                raise ImageError("validation masks and training masks are of different kinds (colour / class id)")
            return samples, val, {**source, "val_images": str(val_images), "val_masks": str(val_masks)}, normalisation
        train_samples, val = _split(samples, args.seed)
        return train_samples, val, {**source, "val_split": [s.name for s in val]}, normalisation
    n_train = int(getattr(args, "sim_frames", None) or SIM_TRAIN_FRAMES)
    n_val = SIM_VAL_FRAMES
    seed0 = int(args.seed) * SEED_BLOCK
    if args.seed < 0 or seed0 + n_train + n_val > HELD_OUT_SEED0 or n_train + n_val > SEED_BLOCK:
        raise ImageError(f"--seed {args.seed} with {n_train} frames would reach the held-out seeds ≥ {HELD_OUT_SEED0}")
    seeds = list(range(seed0, seed0 + n_train + n_val))
    task = progress.add_task("simulating frames", total=len(seeds)) if progress is not None else None
    frames = simulated_samples(
        seeds,
        (SIM_FRAME_PX, SIM_FRAME_PX),
        on_frame=(lambda _i: progress.update(task, advance=1)) if progress is not None else None,
        normalisation=STEM_FEATURES,
    )
    source = {"simulator_seeds": [seed0, seed0 + n_train - 1], "val_seeds": [seed0 + n_train, seeds[-1]]}
    return frames[:n_train], frames[n_train:], {**source, "frame_px": SIM_FRAME_PX}, STEM_FEATURES


def run_train(args: argparse.Namespace) -> int:
    """Train per `args` (see `commands.add_parser`), write the model file; exit code (2 on bad input)."""
    threads = int(getattr(args, "threads", None) or TRAIN_THREADS)
    if threads < 1:
        print(f"grainloop: error: --threads must be ≥ 1, got {threads}", file=sys.stderr)
        return EXIT_BAD_INPUT
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run_train(args, threads)
    finally:
        torch.set_num_threads(previous_threads)


def _run_train(args: argparse.Namespace, threads: int) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    started = time.perf_counter()
    # --json: stdout carries one summary object and stderr stays quiet
    bar = Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    )
    try:
        if args.init is not None:  # fail before minutes of data preparation
            read_model_record(resolve_model_path(args.init))
        with contextlib.nullcontext(None) if args.json else bar as progress:
            train_samples, val_samples, data, normalisation = _load_data(args, progress)
            if args.images:
                classes = _folder_classes(train_samples + val_samples, data["colour_masks"], args.init)
                config = _config_for(args, FOLDER_DEFAULT)
            else:
                classes, config = STEM_CLASSES, _config_for(args, SIM_DEFAULT)
            largest = max(int(s.mask.max()) for s in train_samples + val_samples)
            if largest >= len(classes):
                raise ImageError(f"masks hold class id {largest} but the model has {len(classes)} classes")
            in_channels = train_samples[0].image.shape[0]
            if any(s.image.shape[0] != in_channels for s in val_samples):
                raise ImageError("validation images have a different channel count from the training images")
            model, init_info = initialised_network(args.init, in_channels, classes, int(args.seed))
            intensity_channels = image_channels_for(normalisation, in_channels)
            if config.boundary_dilation_px and classes == STEM_CLASSES:
                train_samples = dilate_boundaries(train_samples, BOUNDARY_CLASS, config.boundary_dilation_px)
            dose_channels = dose_channel_indices(normalisation, intensity_channels)
            focus_class = BOUNDARY_CLASS if classes == STEM_CLASSES else None
            model, result = train(
                train_samples,
                val_samples,
                model,
                config,
                int(args.seed),
                progress,
                intensity_channels,
                dose_channels,
                focus_class,
            )
    except (ImageError, ModelError) as exc:
        print(f"grainloop: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    elapsed_s = time.perf_counter() - started
    out = Path(args.out)
    command = "grainloop seg train " + " ".join(sys.argv[3:]) if sys.argv[1:3] == ["seg", "train"] else None
    provenance = {
        "data": data,
        "config": asdict(config),
        "seed": int(args.seed),
        **init_info,
        "train_images": len(train_samples),
        "val_images": len(val_samples),
        "train_time_s": round(elapsed_s, 1),
        "torch": str(torch.__version__),
        "threads": threads,
        "machine": platform.machine(),
        "command": command,
    }
    metrics = {
        "validation": result["best"],
        "class_frequencies": result["class_frequencies"],
        "history": result["history"],
    }
    record = model_record(model, out.stem, classes, normalisation, provenance=provenance, metrics=metrics)
    if classes == STEM_CLASSES:  # boundary threshold from the validation frames (calibration.py)
        threshold, f1_by_threshold = calibrate_boundary_threshold(model, val_samples)
        record["boundary_threshold"], metrics["boundary_threshold_f1"] = threshold, f1_by_threshold
    try:
        save_model(record, out)
    except OSError as exc:
        print(f"grainloop: error: cannot write {out}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    summary = {
        "model": str(out),
        "classes": list(classes),
        "in_channels": record["in_channels"],
        "best_epoch": result["best"]["epoch"],
        "val_miou": round(result["best"]["miou"], 4),
        "val_iou": result["best"]["iou"],
        "train_time_s": round(elapsed_s, 1),
        "size_bytes": out.stat().st_size,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        console.print(
            f"wrote {out} ({summary['size_bytes'] / 1e6:.2f} MB): best epoch {summary['best_epoch']}, "
            f"val mIoU {summary['val_miou']:.3f}, per class {summary['val_iou']}, {elapsed_s / 60:.1f} min",
            highlight=False,
        )
    return 0
