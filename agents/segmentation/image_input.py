"""Images into the segmentation agent: loading, validation and intensity normalisation.

Images are channels-first float32 arrays (C, H, W). A STEM survey has two channels, HAADF then BF
(HAADF shows phases and pores by Z-contrast; grains of one phase differ only in BF, by diffraction
contrast); a plain micrograph has one. Every path into a `Segmenter` goes through here, so bad input
fails the same way everywhere: an `ImageError` (a `ValueError`) that names what was wrong, never a crash
deep inside torch or scipy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

MIN_SIDE_PX = 16
"""Smaller images carry no microstructure worth segmenting (and break the encoder's pooling)."""
MAX_CHANNELS = 4
STEM_CHANNELS = ("haadf", "bf")
"""Datasets of a survey HDF5 file (`entry/haadf`, `entry/bf`), in channel order."""


class ImageError(ValueError):
    """The input is not an image the segmentation agent can use; the message says why."""


def load_image(path: str | Path) -> np.ndarray:
    """A (C, H, W) float32 image from TIFF, PNG/JPEG, .npy or a STEM survey HDF5 file (HAADF, BF).

    Colour (RGB/RGBA) images are averaged to one grey channel.
    """
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    return validate_image(read_array(path), source=str(path))


def read_array(path: Path, *, kind: str = "an image", first_tiff_page: bool = False) -> np.ndarray:
    """The raw array of a .npy, STEM survey HDF5, TIFF or PIL-readable file; `ImageError` if unreadable.

    `first_tiff_page` reads only a TIFF's first page (masks whose ImageJ header claims more than they hold).
    """
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False)
        if suffix in (".h5", ".hdf5", ".hdf"):
            return _read_survey_hdf5(path)
        if suffix in (".tif", ".tiff"):
            import tifffile

            if not first_tiff_page:
                return tifffile.imread(path)
            logging.getLogger("tifffile").setLevel(logging.ERROR)  # the "shaped" header warning
            with tifffile.TiffFile(path) as tif:
                return tif.pages[0].asarray()
        from PIL import Image

        with Image.open(path) as im:
            return np.asarray(im)
    except ImageError:
        raise
    except Exception as exc:  # corrupt or truncated files raise anything from OSError to struct.error
        raise ImageError(f"{path}: cannot read as {kind} ({type(exc).__name__}: {exc})") from exc


def _read_survey_hdf5(path: Path) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as fh:
        missing = [k for k in STEM_CHANNELS if f"entry/{k}" not in fh]
        if missing:
            raise ImageError(f"{path}: not a STEM survey file (no entry/{', entry/'.join(missing)})")
        return np.stack([np.asarray(fh[f"entry/{k}"]) for k in STEM_CHANNELS])


def survey_pixel_nm(path: str | Path) -> float | None:
    """The pixel size a STEM survey HDF5 file records, else None."""
    path = Path(path)
    if path.suffix.lower() not in (".h5", ".hdf5", ".hdf"):
        return None
    import h5py

    try:
        with h5py.File(path, "r") as fh:
            value = fh["entry"].attrs.get("pixel_nm") if "entry" in fh else None
    except OSError:
        return None
    return float(value) if value is not None else None


def validate_image(image: object, source: str = "image") -> np.ndarray:
    """The image as a finite (C, H, W) float32 array.

    Accepts (H, W); (H, W, 3|4) colour, averaged to one grey channel; (C, H, W) with C ≤ 4 channels.
    Raises `ImageError` for non-arrays, non-numeric dtypes, wrong shapes, tiny or empty images and
    images with no finite pixel (non-finite pixels among finite ones are set to the median).
    """
    try:
        array = image if isinstance(image, np.ndarray) else np.asarray(image)
    except Exception as exc:
        raise ImageError(f"{source}: not an array ({type(exc).__name__}: {exc})") from exc
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ImageError(f"{source}: expected a numeric array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ImageError(f"{source}: complex images are not supported")
    if array.ndim == 2:
        array = array[None]
    elif array.ndim == 3 and array.shape[-1] in (3, 4) and array.shape[0] > MAX_CHANNELS:
        array = array[..., :3].astype(np.float32).mean(axis=-1)[None]
    if array.ndim != 3 or not 1 <= array.shape[0] <= MAX_CHANNELS:
        raise ImageError(
            f"{source}: expected (H, W), (H, W, 3|4) colour or (C ≤ {MAX_CHANNELS}, H, W), got shape {array.shape}"
        )
    if min(array.shape[1:]) < MIN_SIDE_PX:
        raise ImageError(f"{source}: image {array.shape[1:]} is smaller than {MIN_SIDE_PX}×{MIN_SIDE_PX} pixels")
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    if not finite.any():
        raise ImageError(f"{source}: no finite pixel")
    if not finite.all():
        array = np.where(finite, array, np.float32(np.median(array[finite])))
    return array


def normalise(image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Per-channel robust scaling of a (C, H, W) image to about [0, 1] by percentiles (dose and gain drop out)."""
    out = np.empty_like(image, dtype=np.float32)
    for c, channel in enumerate(image):
        lo, hi = np.percentile(channel, [low_pct, high_pct])
        scale = float(hi - lo) if hi > lo else 1.0
        out[c] = (channel - lo) / scale
    return out
