"""The boundary threshold: how it turns probabilities into classes, and that calibration picks the best F1."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from agents.segmentation.calibration import calibrate_boundary_threshold, classes_with_threshold
from agents.segmentation.datasets import Sample
from agents.segmentation.models import load_segmenter, model_record, read_model_record, save_model
from agents.segmentation.segmenter import STEM_CLASSES
from agents.segmentation.unet import UNet


def test_threshold_calls_boundary_below_one_half() -> None:
    probabilities = torch.tensor([[0.5, 0.2], [0.35, 0.7], [0.15, 0.1]])  # 3 classes × 2 pixels
    logits = torch.log(probabilities)[:, None, :]
    assert classes_with_threshold(logits, None).tolist() == [[0, 1]]
    assert classes_with_threshold(logits, 0.3).tolist() == [[1, 1]]
    # above the argmax probability the boundary goes to the runner-up, not to nothing
    assert classes_with_threshold(logits, 0.8).tolist() == [[0, 0]]


class ConstantBoundary(torch.nn.Module):
    """A stand-in network whose p(boundary) is a fixed map: 0.4 on a true line, 0.2 beside it, 0.05 far."""

    n_classes = 3
    size_multiple = 1

    def __init__(self, p_boundary: torch.Tensor) -> None:
        super().__init__()
        rest = (1 - p_boundary) / 2
        self.logits = torch.log(torch.stack([rest, p_boundary, rest]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.logits[None].expand(x.shape[0], -1, -1, -1)


def test_calibration_picks_the_threshold_with_the_best_f1() -> None:
    mask = np.zeros((32, 32), np.uint8)
    mask[:, 16] = 1
    p = torch.full((32, 32), 0.05)
    p[:, 16] = 0.4
    p[:, 10] = 0.25  # a false line 6 px away
    threshold, scores = calibrate_boundary_threshold(ConstantBoundary(p), [Sample(np.zeros((1, 32, 32)), mask, "s")])
    assert 0.25 < threshold <= 0.4
    assert scores["0.30"] == 1.0 and scores["0.25"] < 1.0 and scores["0.45"] == 0.0


def test_a_model_file_threshold_is_used_by_predict(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = UNet(2, len(STEM_CLASSES), (4, 8), stem_stride=2).eval()
    record = model_record(model, "tiny", STEM_CLASSES)
    image = np.random.default_rng(0).random((2, 40, 40)).astype(np.float32)
    plain = load_segmenter(save_model(record, tmp_path / "plain.pt"))
    p_boundary = plain.predict_proba(image)[1]
    record["boundary_threshold"] = float(np.quantile(p_boundary, 0.5))
    calibrated = load_segmenter(save_model(record, tmp_path / "calibrated.pt"))
    assert read_model_record(tmp_path / "calibrated.pt")["boundary_threshold"] == record["boundary_threshold"]
    np.testing.assert_array_equal(calibrated.predict(image) == 1, p_boundary >= record["boundary_threshold"])
