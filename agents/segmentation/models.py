"""The model registry: shipped models by name, model files, and the U-Net `Segmenter`.

A model file is `torch.save` of a plain dict (loadable with `weights_only=True`, so never arbitrary
pickled code): `format`, `name`, `architecture` (the `UNet` hyperparameters), `state_dict`, `classes`,
`in_channels`, `channel_names`, `normalisation` (the `input_features` record), optionally
`boundary_threshold` (`calibration.py`), `provenance` (how it was trained) and `metrics` (validation
numbers at the kept checkpoint). Shipped models live in
`agents/segmentation/models/<name>.pt`, each with a model card `<name>.md`.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.segmentation.calibration import classes_with_threshold
from agents.segmentation.image_input import ImageError, validate_image
from agents.segmentation.input_features import PERCENTILE, feature_channels, image_channels_for, input_features
from agents.segmentation.metrics import BOUNDARY_CLASS
from agents.segmentation.segmenter import NASA_CLASSES, STEM_CLASSES, Segmenter
from agents.segmentation.unet import UNet, fused_for_inference, predict_logits

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL = "sim-122"
SHIPPED_MODELS: dict[str, str] = {
    "sim-122": "U-Net trained on simulated STEM surveys (HAADF + BF); STEM classes",
    "nasa-superalloy": "U-Net fine-tuned on the NASA Super1 superalloy micrographs (grey); γ′ classes",
}
CLASSICAL = "classical"
MODEL_FORMAT = "grainloop-unet/1"
CHANNEL_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {STEM_CLASSES: ("HAADF", "BF"), NASA_CLASSES: ("grey",)}


class ModelError(ValueError):
    """A segmentation model cannot be found or loaded; the message says which and why."""


def known_models() -> tuple[str, ...]:
    """Every name `load_segmenter` accepts (besides paths to model files)."""
    return (*SHIPPED_MODELS, CLASSICAL)


class UNetSegmenter:
    """A trained `UNet` behind the `Segmenter` protocol: normalises, segments (tiled when large), argmaxes."""

    def __init__(self, model: UNet, name: str, classes: tuple[str, ...], record: dict[str, Any]) -> None:
        if model.n_classes != len(classes):
            raise ModelError(f"{name}: network has {model.n_classes} outputs but {len(classes)} classes")
        self.name = name
        self.classes = classes
        self.normalisation = dict(record.get("normalisation") or PERCENTILE)
        self.in_channels = int(record.get("in_channels") or model.in_channels)
        if feature_channels(self.normalisation, self.in_channels) != model.in_channels:
            raise ModelError(
                f"{name}: {self.in_channels} image channels with {self.normalisation.get('method')} normalisation "
                f"do not give the network's {model.in_channels} input channels"
            )
        self.channel_names = tuple(record.get("channel_names") or ())
        threshold = record.get("boundary_threshold")
        has_boundary = len(classes) > BOUNDARY_CLASS and classes[BOUNDARY_CLASS] == "grain_boundary"
        self.boundary_threshold = float(threshold) if threshold is not None and has_boundary else None
        self.record = record
        self.network = fused_for_inference(model)

    def _checked(self, image: np.ndarray, acquisition: dict[str, Any] | None) -> np.ndarray:
        image = validate_image(image)
        if image.shape[0] != self.in_channels:
            what = f" ({', '.join(self.channel_names)})" if self.channel_names else ""
            raise ImageError(f"{self.name} needs {self.in_channels} channel(s){what}, got {image.shape[0]}")
        return input_features(image, self.normalisation, acquisition)

    def predict_proba(self, image: np.ndarray, acquisition: dict[str, Any] | None = None) -> np.ndarray:
        """(n_classes, H, W) float32 class probabilities of a (C, H, W) image (`acquisition`: see `predict`)."""
        logits = predict_logits(self.network, self._checked(image, acquisition))
        return torch.softmax(logits, dim=0).numpy()

    def predict(self, image: np.ndarray, acquisition: dict[str, Any] | None = None) -> np.ndarray:
        """(H, W) uint8 class ids of a (C, H, W) image of any size.

        `acquisition`: optional metadata of the frame; a model with dose channels reads `electrons_per_px`
        from it (else the vacuum reference in the frame, else its training dose — `input_features`).
        A model with a calibrated `boundary_threshold` calls a pixel boundary where p(boundary) ≥ it
        (`calibration.classes_with_threshold`); otherwise each pixel takes its most likely class.
        """
        logits = predict_logits(self.network, self._checked(image, acquisition))
        return classes_with_threshold(logits, self.boundary_threshold).numpy()


def model_record(
    model: UNet,
    name: str,
    classes: tuple[str, ...],
    normalisation: dict[str, Any] | None = None,
    provenance: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The dict a model file holds (see module docstring); weights as float32 CPU tensors."""
    normalisation = dict(normalisation or PERCENTILE)
    image_channels = image_channels_for(normalisation, model.in_channels)
    return {
        "format": MODEL_FORMAT,
        "name": name,
        "architecture": model.hyperparameters(),
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "classes": list(classes),
        "in_channels": image_channels,
        "channel_names": list(CHANNEL_NAMES.get(tuple(classes), ())[:image_channels]),
        "normalisation": normalisation,
        "provenance": provenance or {},
        "metrics": metrics or {},
    }


def save_model(record: dict[str, Any], path: str | Path) -> Path:
    """Write a model record (from `model_record`) to `path`, creating its folder."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(record, path)
    return path


def read_model_record(path: str | Path) -> dict[str, Any]:
    """The dict in a model file; `ModelError` if it is missing, corrupt or not a grainloop U-Net."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    try:
        record = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, wrong format, unpickling refused: all mean "not a model"
        first_line = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ""
        raise ModelError(f"{path}: not a readable model file ({type(exc).__name__}: {first_line})") from exc
    if not isinstance(record, dict) or record.get("format") != MODEL_FORMAT:
        raise ModelError(f"{path}: not a grainloop U-Net model file (expected format {MODEL_FORMAT!r})")
    missing = [k for k in ("architecture", "state_dict", "classes") if k not in record]
    if missing:
        raise ModelError(f"{path}: model file lacks {', '.join(missing)}")
    return record


def network_from_record(record: dict[str, Any], source: str = "model") -> UNet:
    """The `UNet` a model record describes, with its weights loaded."""
    try:
        model = UNet(**record["architecture"])
        model.load_state_dict(record["state_dict"])
    except (TypeError, ValueError, RuntimeError, KeyError) as exc:
        first_line = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{source}: weights do not fit the architecture ({first_line})") from exc
    return model.eval()


def resolve_model_path(name_or_path: str | Path) -> Path:
    """The file behind a shipped model name, or the path itself; `ModelError` for unknown names."""
    text = str(name_or_path)
    if text in SHIPPED_MODELS:
        return MODELS_DIR / f"{text}.pt"
    path = Path(text)
    if path.suffix == ".pt" or path.exists():
        return path
    raise ModelError(f"unknown model {text!r}: use one of {', '.join(known_models())} or a path to a .pt model file")


@functools.lru_cache(maxsize=8)
def _cached_segmenter(path: str, mtime_ns: int) -> UNetSegmenter:
    record = read_model_record(path)
    model = network_from_record(record, path)
    classes = tuple(record["classes"])
    return UNetSegmenter(model, str(record.get("name") or Path(path).stem), classes, record)


def load_segmenter(name_or_path: str | Path = DEFAULT_MODEL) -> Segmenter:
    """A ready `Segmenter`: `sim-122` (default), `nasa-superalloy`, `classical`, or a model file's path.

    Raises `ModelError` for unknown names and missing, corrupt or incompatible model files.
    """
    if str(name_or_path) == CLASSICAL:
        try:
            from agents.segmentation.classical import ClassicalSegmenter
        except ImportError as exc:
            raise ModelError(f"the classical segmenter is not available ({exc})") from exc
        return ClassicalSegmenter()
    path = resolve_model_path(name_or_path)
    if not path.is_file():
        raise ModelError(f"{path}: no such model file")
    return _cached_segmenter(str(path.resolve()), path.stat().st_mtime_ns)
