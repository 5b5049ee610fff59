"""Images into the segmentation agent: loading, validation and intensity normalisation.

Every path into a `Segmenter` goes through here, so bad input fails the same way everywhere: an
`ImageError` (a `ValueError`) that names what was wrong, never a crash deep inside torch or scipy.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

MIN_SIDE_PX = 16
"""Smaller images carry no microstructure worth segmenting (and break the encoder's pooling)."""


class ImageError(ValueError):
    """The input is not an image the segmentation agent can use; the message says why."""


def load_image(path: str | Path) -> np.ndarray:
    """A 2-D float32 image from TIFF, PNG/JPEG or .npy; colour images are averaged to grey."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            array = np.load(path, allow_pickle=False)
        elif suffix in (".tif", ".tiff"):
            import tifffile

            array = tifffile.imread(path)
        else:
            from PIL import Image

            with Image.open(path) as im:
                array = np.asarray(im)
    except ImageError:
        raise
    except Exception as exc:  # corrupt or truncated files raise anything from OSError to struct.error
        raise ImageError(f"{path}: cannot read as an image ({type(exc).__name__}: {exc})") from exc
    return validate_image(array, source=str(path))


def validate_image(image: object, source: str = "image") -> np.ndarray:
    """The image as a finite 2-D float32 array; colour (H, W, 3|4) is averaged to grey.

    Raises `ImageError` for non-arrays, non-numeric dtypes, wrong shapes, tiny or empty images and
    images with no finite pixel.
    """
    array = np.asarray(image) if not isinstance(image, np.ndarray) else image
    if array.dtype == object or not (np.issubdtype(array.dtype, np.number) or array.dtype == bool):
        raise ImageError(f"{source}: expected a numeric array, got dtype {array.dtype}")
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ImageError(f"{source}: complex images are not supported")
    if array.ndim == 3 and array.shape[-1] in (3, 4):
        array = array[..., :3].astype(np.float32).mean(axis=-1)
    elif array.ndim == 3 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 2:
        raise ImageError(f"{source}: expected a 2-D image (or H×W×3/4 colour), got shape {array.shape}")
    if min(array.shape) < MIN_SIDE_PX:
        raise ImageError(f"{source}: image {array.shape} is smaller than {MIN_SIDE_PX}×{MIN_SIDE_PX} pixels")
    array = array.astype(np.float32, copy=False)
    finite = np.isfinite(array)
    if not finite.any():
        raise ImageError(f"{source}: no finite pixel")
    if not finite.all():
        array = np.where(finite, array, np.float32(np.median(array[finite])))
    return array


def normalise(image: np.ndarray, low_pct: float = 0.5, high_pct: float = 99.5) -> np.ndarray:
    """Robust scaling to about [0, 1] by percentiles, so dose and detector gain don't matter."""
    lo, hi = np.percentile(image, [low_pct, high_pct])
    scale = float(hi - lo) if hi > lo else 1.0
    return ((image - lo) / scale).astype(np.float32)
