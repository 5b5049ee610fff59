"""The classical baseline on a simulator frame: better than a trivial map, protocol, bad channels."""

from __future__ import annotations

import numpy as np
import pytest

from agents.segmentation.classical import ClassicalSegmenter
from agents.segmentation.image_input import ImageError
from agents.segmentation.segmenter import STEM_CLASSES, Segmenter
from agents.segmentation.sim_data import HELD_OUT_SEED0, simulated_survey


def miou(pred: np.ndarray, truth: np.ndarray) -> float:
    scores = []
    for c in np.unique(truth):
        union = np.count_nonzero((pred == c) | (truth == c))
        scores.append(np.count_nonzero((pred == c) & (truth == c)) / union)
    return float(np.mean(scores))


@pytest.fixture(scope="module")
def survey():
    return simulated_survey(HELD_OUT_SEED0 + 19, shape=(256, 256))


def test_it_is_a_segmenter_with_the_stem_classes() -> None:
    seg = ClassicalSegmenter()
    assert isinstance(seg, Segmenter) and seg.classes == STEM_CLASSES and seg.name == "classical"


def test_it_beats_an_all_matrix_map_and_finds_the_pores(survey) -> None:
    pred = ClassicalSegmenter().predict(survey.image)
    assert pred.shape == survey.label.shape and pred.dtype == np.uint8
    assert miou(pred, survey.label) > miou(np.zeros_like(survey.label), survey.label) + 0.2
    pores, true_pores = pred == 2, survey.label == 2
    assert np.count_nonzero(pores & true_pores) / np.count_nonzero(pores | true_pores) > 0.85
    assert (pred == 1).any(), "some grain boundaries are found"


def test_one_channel_mode_and_wrong_channels(survey) -> None:
    pred = ClassicalSegmenter(in_channels=1).predict(survey.image[:1])
    assert pred.shape == survey.label.shape
    with pytest.raises(ImageError, match="2 channel"):
        ClassicalSegmenter().predict(survey.image[:1])
    with pytest.raises(ValueError):
        ClassicalSegmenter(in_channels=3)


def test_a_flat_image_gives_one_matrix_region() -> None:
    rng = np.random.default_rng(0)
    image = rng.poisson(30.0, (2, 64, 64)).astype(np.float32)
    pred = ClassicalSegmenter().predict(image)
    assert np.mean(pred == 0) > 0.9
