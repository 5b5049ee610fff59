"""The U-Net: shapes for any image size, tiling, BatchNorm folding, hyperparameters."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from agents.segmentation.unet import UNet, _tile_starts, fused_for_inference, predict_logits


@pytest.fixture
def model() -> UNet:
    torch.manual_seed(0)
    return UNet(2, 5, (4, 8, 16), stem_stride=2).eval()


def test_size_multiple_counts_stem_and_pooling(model: UNet) -> None:
    assert model.size_multiple == 2 * 2**2
    assert UNet(1, 3, (4, 8, 16, 32), stem_stride=1).size_multiple == 8


@pytest.mark.parametrize("shape", [(16, 16), (37, 53), (64, 17), (129, 100)])
def test_logits_have_the_image_shape_for_odd_sizes(model: UNet, shape: tuple[int, int]) -> None:
    image = np.random.default_rng(0).random((2, *shape), dtype=np.float32)
    logits = predict_logits(model, image)
    assert logits.shape == (5, *shape)
    assert torch.isfinite(logits).all()


class PointwiseNet(UNet):
    """A U-Net whose output depends on each pixel alone, so tiling must reproduce the whole-image result."""

    def __init__(self) -> None:
        super().__init__(2, 3, (4, 8), stem_stride=2)
        self.pointwise = torch.nn.Conv2d(2, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(x)


def test_tiles_stitch_to_the_whole_image() -> None:
    torch.manual_seed(0)
    model = PointwiseNet().eval()
    image = np.random.default_rng(1).random((2, 150, 97), dtype=np.float32)
    whole = predict_logits(model, image, tile_px=1024)
    tiled = predict_logits(model, image, tile_px=64, overlap_px=16)
    torch.testing.assert_close(tiled, whole)


@pytest.mark.parametrize(("size", "tile", "overlap"), [(100, 64, 16), (64, 64, 16), (65, 64, 16), (1000, 256, 64)])
def test_tile_starts_reach_the_end(size: int, tile: int, overlap: int) -> None:
    starts = _tile_starts(size, tile, overlap)
    assert starts[0] == 0 and starts[-1] + min(tile, size) == size
    assert all(b - a <= tile - overlap for a, b in itertools.pairwise(starts))


def test_overlap_must_leave_room() -> None:
    with pytest.raises(ValueError, match="overlap"):
        predict_logits(UNet(1, 2, (4, 8)), np.zeros((1, 32, 32), np.float32), tile_px=32, overlap_px=16)


def test_batchnorm_folding_keeps_the_outputs(model: UNet) -> None:
    # move BatchNorm statistics away from identity so the fold has something to do
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(2, 2, 32, 32) * 3 + 1)
    model.eval()
    image = np.random.default_rng(2).random((2, 40, 48), dtype=np.float32)
    expected = predict_logits(model, image)
    fused = fused_for_inference(model)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in fused.modules())
    torch.testing.assert_close(predict_logits(fused, image), expected, atol=1e-4, rtol=1e-4)


def test_hyperparameters_rebuild_the_architecture(model: UNet) -> None:
    rebuilt = UNet(**model.hyperparameters())
    rebuilt.load_state_dict(model.state_dict())
    x = torch.rand(1, 2, 32, 32)
    torch.testing.assert_close(rebuilt.eval()(x), model(x))


@pytest.mark.parametrize(
    "kwargs",
    [
        {"in_channels": 0, "n_classes": 2},
        {"in_channels": 1, "n_classes": 1},
        {"in_channels": 1, "n_classes": 2, "widths": (8,)},
    ],
)
def test_bad_hyperparameters_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="UNet needs"):
        UNet(**kwargs)
