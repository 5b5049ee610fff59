"""Tiny models and images for the segmentation tests (a 2-level U-Net with 4-8 channels runs in milliseconds)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.segmentation.models import model_record, save_model
from agents.segmentation.segmenter import STEM_CLASSES
from agents.segmentation.unet import UNet

TINY_WIDTHS = (4, 8)


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny networks are all overhead: one thread is faster, and on a loaded machine two spin-wait."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def tiny_model_path(tmp_path: Path) -> Path:
    """An untrained two-channel, five-class (STEM) model file with a tiny network."""
    import torch

    torch.manual_seed(0)
    model = UNet(2, len(STEM_CLASSES), TINY_WIDTHS, stem_stride=2).eval()
    return save_model(model_record(model, "tiny", STEM_CLASSES), tmp_path / "tiny.pt")


def disks_image(rng: np.random.Generator, side_px: int = 64, n_disks: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A grey image of bright disks on a dark, noisy background and its mask (1 inside disks)."""
    yy, xx = np.mgrid[:side_px, :side_px]
    mask = np.zeros((side_px, side_px), np.uint8)
    for _ in range(n_disks):
        cy, cx = rng.integers(8, side_px - 8, 2)
        mask[(yy - cy) ** 2 + (xx - cx) ** 2 < rng.integers(16, 64)] = 1
    image = 40 + 120 * mask + rng.normal(0, 12, mask.shape)
    return np.clip(image, 0, 255).astype(np.uint8), mask
