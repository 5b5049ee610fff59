"""bench/segmentation.py in a tiny mode: metrics on known maps and one end-to-end run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.segmentation.metrics import boundary_f1, boundary_hits, confusion_matrix, iou_per_class
from bench import segmentation as bench


def test_boundary_f1_tolerates_a_shift_within_two_pixels() -> None:
    truth = np.zeros((40, 40), np.uint8)
    truth[:, 20] = 1
    shifted = np.zeros_like(truth)
    shifted[:, 22] = 1
    assert boundary_f1(boundary_hits(truth, shifted)) == 1.0
    far = np.zeros_like(truth)
    far[:, 25] = 1
    assert boundary_f1(boundary_hits(truth, far)) == 0.0


def test_iou_per_class() -> None:
    truth = np.array([[0, 0, 1, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1]], np.uint8)
    assert iou_per_class(confusion_matrix(truth, pred, 2)).tolist() == [0.5, 2 / 3]


def test_gamma_prime_iou() -> None:
    truth = np.array([[0, 1, 2, 0]])
    assert bench.gamma_prime_iou(np.array([[0, 1, 1, 0]]), truth) == (1.0, 1.0)


def test_a_tiny_run_prints_one_json_summary(capsys: pytest.CaptureFixture) -> None:
    bench.main(["--frames", "2", "--size", "128", "--models", "classical", "--no-nasa",
                "--throughput-sizes", "128", "--repeats", "1", "--json"])  # fmt: skip
    summary = json.loads(capsys.readouterr().out)
    sim = summary["simulated"]
    assert set(sim) == {"classical", "truth-label"}
    assert sim["truth-label"]["miou"] == 1.0 and sim["truth-label"]["boundary_f1"] == 1.0
    assert 0.0 < sim["classical"]["miou"] < 1.0
    assert summary["throughput"]["classical"]["128"]["images_per_s"] > 0
    assert summary["targets"]["miou"]["verdict"] == "n/a"  # no U-Net in this run
