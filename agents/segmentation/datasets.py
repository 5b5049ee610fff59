"""Training data for the U-Net: simulator frames or folders of image/mask pairs, and augmented crops of them.

Every sample is a network input (`input_features`: the normalised image, maybe with derived channels)
with an (H, W) uint8 class-id mask. `CropSampler` draws seeded batches of random crops with flips, 90° rotations and
intensity augmentation (per-channel gain and offset, gamma, Gaussian noise), so a run is reproducible
from its seed.

Mask files (`masks_dir`) match images by file stem: `<stem>.*` or `<stem>_mask.*`. A mask is either a
2-D integer array of class ids (< number of classes), or an RGB(A) colour mask: pure blue (0, 0, 255) is
class 1, pure red (255, 0, 0) class 2, and every other colour class 0 — the convention of the NASA
Super1 superalloy masks, whose class-0 pixels are the grey micrograph itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.segmentation.image_input import ImageError, load_image, read_array
from agents.segmentation.input_features import PERCENTILE, STEM_FEATURES, input_features
from agents.segmentation.sim_data import HELD_OUT_SEED0, cached_survey

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".npy", ".h5", ".hdf5")
STEM_PORE_CLASS = 2
MASK_COLOURS: dict[tuple[int, int, int], int] = {(0, 0, 255): 1, (255, 0, 0): 2}
"""RGB colour → class id in colour masks; any other colour is class 0."""


@dataclass(frozen=True)
class Sample:
    image: np.ndarray  # (C, H, W) network input (input_features), float32 or float16
    mask: np.ndarray  # (H, W) uint8 class ids
    name: str


def simulated_samples(
    seeds: Sequence[int],
    shape: tuple[int, int] = (512, 512),
    on_frame: Callable[[int], None] | None = None,
    normalisation: dict[str, Any] = STEM_FEATURES,
) -> list[Sample]:
    """Simulator frames for `seeds` (all below `HELD_OUT_SEED0`) as network inputs; `on_frame(i)` after each.

    Frames come from the on-disk cache (`sim_data.cached_survey`) when simulated before; the dose channels
    get the frame's true acquisition (the metadata a STEM device records).
    """
    bad = [s for s in seeds if not 0 <= s < HELD_OUT_SEED0]
    if bad:
        raise ValueError(f"training seeds must lie in [0, {HELD_OUT_SEED0}); got {bad[:3]}")
    samples = []
    for i, seed in enumerate(seeds):
        survey = cached_survey(int(seed), shape)
        # float16 halves the memory of a cached training set; crops are float32 again
        image = input_features(survey.image, normalisation, survey.acquisition).astype(np.float16)
        samples.append(Sample(image, survey.label.astype(np.uint8), f"sim-{seed}"))
        if on_frame is not None:
            on_frame(i)
    return samples


def is_colour_mask(array: np.ndarray) -> bool:
    """True for an (H, W, 3|4) RGB(A) mask, False for a class-id mask."""
    return array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > 4


def dilate_boundaries(samples: Sequence[Sample], boundary_class: int, radius_px: int) -> list[Sample]:
    """Samples whose boundary class is widened by `radius_px` (3×3 steps) into every class but pores (2).

    A training target: a 1-2 px line under Poisson noise is learned slowly; a 3 px band around it is
    learned quickly and still lies within the 2 px tolerance of boundary F1.
    """
    if radius_px <= 0:
        return list(samples)
    from scipy import ndimage

    widened = []
    for sample in samples:
        band = ndimage.binary_dilation(sample.mask == boundary_class, iterations=radius_px)
        mask = sample.mask.copy()
        mask[band & (mask != STEM_PORE_CLASS)] = boundary_class
        widened.append(Sample(sample.image, mask, sample.name))
    return widened


def decode_mask(array: np.ndarray, n_classes: int, source: str = "mask") -> np.ndarray:
    """(H, W) uint8 class ids from a class-id mask or an RGB(A) colour mask (see module docstring)."""
    array = np.asarray(array)
    if is_colour_mask(array):
        rgb = array[..., :3].astype(np.int64)
        if array.dtype != np.uint8 and rgb.max() > 255:
            raise ImageError(f"{source}: colour mask must be 8-bit, got dtype {array.dtype}")
        mask = np.zeros(array.shape[:2], np.uint8)
        for colour, class_id in MASK_COLOURS.items():
            if class_id >= n_classes:
                continue
            mask[np.all(rgb == colour, axis=-1)] = class_id
        return mask
    if array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ImageError(f"{source}: expected an (H, W) class-id or (H, W, 3|4) colour mask, got shape {array.shape}")
    if not np.issubdtype(array.dtype, np.integer) and array.dtype != bool:
        raise ImageError(f"{source}: class-id masks must be integer, got dtype {array.dtype}")
    if array.size and (array.min() < 0 or array.max() >= n_classes):
        raise ImageError(f"{source}: class ids must lie in [0, {n_classes}), found {array.min()}..{array.max()}")
    return array.astype(np.uint8)


def read_mask_file(path: Path) -> np.ndarray:
    """The raw array of a mask file (TIFF first page, PNG or .npy), without decoding."""
    return read_array(path, kind="a mask", first_tiff_page=True)


def _files_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def folder_samples(
    images_dir: str | Path,
    masks_dir: str | Path,
    n_classes: int | None = None,
    normalisation: dict[str, Any] = PERCENTILE,
) -> tuple[list[Sample], bool]:
    """Image/mask pairs of two folders, matched by stem (`<stem>.*` or `<stem>_mask.*`), and whether the
    masks are colour masks (then with `len(MASK_COLOURS) + 1` classes).

    `n_classes` bounds class ids (None: colour masks decode to 3 classes, id masks are checked later).
    Raises `ImageError` for a missing or empty folder, an image without a mask (or the reverse), a mask
    whose size differs from its image, mixed colour and class-id masks, or mixed channel counts.
    """
    images_dir, masks_dir = Path(images_dir), Path(masks_dir)
    for folder in (images_dir, masks_dir):
        if not folder.is_dir():
            raise ImageError(f"{folder}: no such directory")
    images = _files_by_stem(images_dir)
    if not images:
        raise ImageError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    masks = _files_by_stem(masks_dir)
    matched: dict[str, Path] = {}
    for stem in images:
        mask = masks.get(f"{stem}_mask") or masks.get(stem)
        if mask is None:
            raise ImageError(f"{images_dir / stem}: no mask {stem}.* or {stem}_mask.* in {masks_dir}")
        matched[stem] = mask
    used = {p.stem for p in matched.values()}
    orphans = sorted(set(masks) - used)
    if orphans:
        raise ImageError(f"{masks_dir}: masks without an image: {', '.join(orphans[:5])}")
    samples, colour_kinds = [], set()
    for stem, mask_path in matched.items():
        image = load_image(images[stem])
        raw = read_mask_file(mask_path)
        colour_kinds.add(is_colour_mask(raw))
        limit = n_classes if n_classes is not None else (len(MASK_COLOURS) + 1 if is_colour_mask(raw) else 256)
        mask = decode_mask(raw, limit, str(mask_path))
        if mask.shape != image.shape[1:]:
            raise ImageError(f"{mask_path}: mask {mask.shape} does not match image {image.shape[1:]}")
        try:
            features = input_features(image, normalisation)
        except ValueError as exc:
            raise ImageError(f"{images[stem]}: {exc}") from exc
        samples.append(Sample(features, mask, stem))
    if len(colour_kinds) > 1:
        raise ImageError(f"{masks_dir}: mixes colour masks and class-id masks")
    channels = {s.image.shape[0] for s in samples}
    if len(channels) > 1:
        raise ImageError(f"{images_dir}: images have different channel counts {sorted(channels)}")
    return samples, colour_kinds == {True}


def class_frequencies(samples: Sequence[Sample], n_classes: int) -> np.ndarray:
    """Fraction of pixels in each class over all samples."""
    counts = sum(np.bincount(s.mask.ravel(), minlength=n_classes)[:n_classes] for s in samples)
    return np.asarray(counts, dtype=np.float64) / max(float(np.sum(counts)), 1.0)


class CropSampler:
    """Seeded batches of augmented random crops: (N, C, crop, crop) float32 images, (N, crop, crop) int64 masks."""

    def __init__(
        self,
        samples: Sequence[Sample],
        crop_px: int,
        seed: int,
        augment: bool = True,
        intensity_channels: int | None = None,
        dose_channels: tuple[int, ...] = (),
        focus_class: int | None = None,
        focus_share: float = 0.0,
        max_noise_sigma: float = 0.08,
    ) -> None:
        """`intensity_channels`: how many leading channels are percentile-scaled intensities (default all);
        `dose_channels`: channels on an absolute (dose-normalised) scale, which get only a small common gain;
        `focus_share` of the crops contain a random pixel of `focus_class` (where the image has one);
        `max_noise_sigma`: the added Gaussian noise's σ is drawn uniformly up to this."""
        if not 0.0 <= focus_share <= 1.0:
            raise ValueError(f"focus_share must lie in [0, 1], got {focus_share}")
        if not samples:
            raise ValueError("no training samples")
        self.samples = list(samples)
        self.intensity_channels = samples[0].image.shape[0] if intensity_channels is None else intensity_channels
        self.dose_channels = list(dose_channels)
        self.crop_px = crop_px
        self.augment = augment
        self.rng = np.random.default_rng([seed, 0xC209])
        # larger images are drawn more often, so every pixel is about equally likely
        areas = np.array([s.mask.size for s in self.samples], dtype=np.float64)
        self.weights = areas / areas.sum()
        self.max_noise_sigma = max_noise_sigma
        self.focus_share = focus_share if focus_class is not None else 0.0
        self.focus_pixels = [
            np.flatnonzero(s.mask == focus_class) if self.focus_share else np.empty(0, np.intp) for s in self.samples
        ]
        counts = np.array([len(f) for f in self.focus_pixels], dtype=np.float64)
        self.focus_weights = counts / counts.sum() if counts.sum() else None

    def _crop(self, sample: Sample, focus: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """A random crop; with `focus` (flat pixel indices), one that contains a random one of them."""
        image, mask = sample.image, sample.mask
        height, width = mask.shape
        crop = self.crop_px
        if focus is not None and len(focus) and height >= crop and width >= crop:
            fy, fx = divmod(int(focus[self.rng.integers(len(focus))]), width)
            y = int(self.rng.integers(max(0, fy - crop + 1), min(fy, height - crop) + 1))
            x = int(self.rng.integers(max(0, fx - crop + 1), min(fx, width - crop) + 1))
            return image[:, y : y + crop, x : x + crop], mask[y : y + crop, x : x + crop]
        if height < crop or width < crop:  # pad small images by reflection up to one crop
            pad = ((0, max(crop - height, 0)), (0, max(crop - width, 0)))
            image = np.pad(image, ((0, 0), *pad), mode="reflect")
            mask = np.pad(mask, pad, mode="reflect")
            height, width = mask.shape
        y = int(self.rng.integers(0, height - crop + 1))
        x = int(self.rng.integers(0, width - crop + 1))
        return image[:, y : y + crop, x : x + crop], mask[y : y + crop, x : x + crop]

    def _augment(self, image: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        rng = self.rng
        k = int(rng.integers(4))
        image, mask = np.rot90(image, k, axes=(1, 2)), np.rot90(mask, k)
        if rng.random() < 0.5:
            image, mask = image[:, :, ::-1], mask[:, ::-1]
        image = np.array(image, dtype=np.float32)
        # gamma, gain and offset act on the percentile-scaled channels (about [0, 1]); derived channels
        # (log ratio, gradients) only get a mild gain and shift
        n = min(self.intensity_channels, image.shape[0])
        gamma = np.exp(rng.normal(0.0, 0.25, n)).astype(np.float32)
        gain = rng.uniform(0.8, 1.25, n).astype(np.float32)
        offset = rng.uniform(-0.1, 0.1, n).astype(np.float32)
        image[:n] = np.clip(image[:n], 0.0, None) ** gamma[:, None, None] * gain[:, None, None] + offset[:, None, None]
        derived = [c for c in range(n, image.shape[0]) if c not in self.dose_channels]
        if derived:
            image[derived] *= rng.uniform(0.85, 1.15, (len(derived), 1, 1)).astype(np.float32)
            image[derived] += rng.uniform(-0.1, 0.1, (len(derived), 1, 1)).astype(np.float32)
        if self.dose_channels:
            # the physical levels are what these channels are for: only the dose's own uncertainty (±3 %)
            image[self.dose_channels] *= np.float32(rng.uniform(0.97, 1.03))
        noise_sigma = float(rng.uniform(0.0, self.max_noise_sigma))
        if noise_sigma > 0.01:
            image += rng.normal(0.0, noise_sigma, image.shape).astype(np.float32)
        return image, np.ascontiguousarray(mask)

    def batch(self, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
        images, masks = [], []
        for _ in range(batch_size):
            if self.focus_weights is not None and self.rng.random() < self.focus_share:
                index = int(self.rng.choice(len(self.samples), p=self.focus_weights))
                image, mask = self._crop(self.samples[index], self.focus_pixels[index])
            else:
                index = int(self.rng.choice(len(self.samples), p=self.weights))
                image, mask = self._crop(self.samples[index])
            if self.augment:
                image, mask = self._augment(image, mask)
            images.append(np.ascontiguousarray(image, dtype=np.float32))
            masks.append(mask.astype(np.int64))
        return torch.from_numpy(np.stack(images)), torch.from_numpy(np.stack(masks))
