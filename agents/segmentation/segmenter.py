"""What every segmenter (the U-Net, the classical baseline) offers: an image in, class ids out."""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from simulators.microstructure import LABEL_CLASSES

STEM_CLASSES: tuple[str, ...] = LABEL_CLASSES
"""Class ids of STEM label maps: 0 matrix, 1 grain_boundary, 2 pore, 3 secondary_phase, 4 contamination."""

NASA_CLASSES: tuple[str, ...] = ("matrix", "secondary_gamma_prime", "tertiary_gamma_prime")
"""Class ids of the NASA Super1 superalloy masks."""


@runtime_checkable
class Segmenter(Protocol):
    """Semantic segmentation of one 2-D image."""

    name: str
    classes: tuple[str, ...]
    in_channels: int
    """Channels the segmenter needs: 2 for a STEM survey (HAADF, BF), 1 for a plain micrograph."""

    def predict(self, image: np.ndarray) -> np.ndarray:
        """(H, W) uint8 class ids for a validated (C, H, W) float32 image of any size.

        Raises `ImageError` when C differs from `in_channels`.
        """
        ...
