"""The model registry: names, model files, errors, and the U-Net segmenter's contract."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from agents.segmentation.image_input import ImageError
from agents.segmentation.models import (
    MODELS_DIR,
    SHIPPED_MODELS,
    ModelError,
    known_models,
    load_segmenter,
    model_record,
    read_model_record,
    save_model,
)
from agents.segmentation.segmenter import NASA_CLASSES, STEM_CLASSES, Segmenter
from agents.segmentation.unet import UNet

MAX_MODEL_BYTES = 4_500_000


def test_known_names_include_the_shipped_models_and_the_baseline() -> None:
    assert set(known_models()) == {"sim-122", "nasa-superalloy", "classical"}


def test_unknown_name_is_a_model_error_naming_the_choices() -> None:
    with pytest.raises(ModelError, match=r"unknown model 'resnet'.*sim-122"):
        load_segmenter("resnet")


def test_missing_model_file(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="no such model file"):
        load_segmenter(tmp_path / "absent.pt")


@pytest.mark.parametrize("content", [b"", b"not a zip archive at all", b"PK\x03\x04truncated"])
def test_corrupt_model_file(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "corrupt.pt"
    path.write_bytes(content)
    with pytest.raises(ModelError, match="not a readable model file"):
        load_segmenter(path)


def test_foreign_torch_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, path)
    with pytest.raises(ModelError, match="not a grainloop U-Net"):
        read_model_record(path)


def test_weights_that_do_not_fit_the_architecture(tmp_path: Path) -> None:
    record = model_record(UNet(2, 5, (4, 8)), "bad", STEM_CLASSES)
    record["architecture"]["widths"] = [8, 16]
    path = save_model(record, tmp_path / "bad.pt")
    with pytest.raises(ModelError, match="do not fit"):
        load_segmenter(path)


def test_round_trip_predicts_like_the_network(tiny_model_path: Path) -> None:
    segmenter = load_segmenter(tiny_model_path)
    assert isinstance(segmenter, Segmenter)
    assert segmenter.classes == STEM_CLASSES and segmenter.in_channels == 2
    image = np.random.default_rng(0).random((2, 45, 70)).astype(np.float32) * 300
    mask = segmenter.predict(image)
    assert mask.shape == (45, 70) and mask.dtype == np.uint8 and mask.max() < 5
    probabilities = segmenter.predict_proba(image)
    np.testing.assert_allclose(probabilities.sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(probabilities.argmax(0), mask)


def test_wrong_channel_count_says_what_the_model_needs(tiny_model_path: Path) -> None:
    segmenter = load_segmenter(tiny_model_path)
    with pytest.raises(ImageError, match=r"needs 2 channel\(s\) \(HAADF, BF\), got 1"):
        segmenter.predict(np.zeros((64, 64), np.float32))


@pytest.mark.parametrize("name", sorted(SHIPPED_MODELS))
def test_shipped_models_load_and_fit_in_the_budget(name: str) -> None:
    path = MODELS_DIR / f"{name}.pt"
    assert path.stat().st_size <= MAX_MODEL_BYTES
    assert (MODELS_DIR / f"{name}.md").is_file(), "every shipped model has a model card"
    segmenter = load_segmenter(name)
    expected = {"sim-122": (STEM_CLASSES, 2), "nasa-superalloy": (NASA_CLASSES, 1)}[name]
    assert (segmenter.classes, segmenter.in_channels) == expected
    image = np.random.default_rng(3).random((segmenter.in_channels, 33, 47)).astype(np.float32)
    assert segmenter.predict(image).shape == (33, 47)


def test_default_model_segments_a_simulated_survey() -> None:
    """sim-122 on a held-out simulator frame: most pixels right (the bench measures the real numbers)."""
    from agents.segmentation.sim_data import HELD_OUT_SEED0, simulated_survey

    survey = simulated_survey(HELD_OUT_SEED0 + 3, (128, 128))
    mask = load_segmenter().predict(survey.image)
    assert (mask == survey.label).mean() > 0.8


def test_classical_is_reachable_by_name() -> None:
    segmenter = load_segmenter("classical")
    assert isinstance(segmenter, Segmenter)


def test_log_ratio_feature_is_nearly_dose_invariant() -> None:
    from agents.segmentation.input_features import (
        STEM_FEATURES,
        dose_channel_indices,
        feature_channels,
        input_features,
    )

    rng = np.random.default_rng(4)
    haadf = rng.poisson(300, (64, 64)).astype(np.float32)
    bf = rng.poisson(900, (64, 64)).astype(np.float32)
    features = input_features(np.stack([haadf, bf]), STEM_FEATURES)
    doubled = input_features(np.stack([2 * haadf, 2 * bf]), STEM_FEATURES)
    assert features.shape == (feature_channels(STEM_FEATURES, 2), 64, 64)
    log_ratio = 2 + len(dose_channel_indices(STEM_FEATURES, 2))  # after HAADF, BF and the dose channels
    np.testing.assert_allclose(doubled[log_ratio], features[log_ratio], atol=0.01)
    np.testing.assert_allclose(np.median(features[log_ratio]), (np.log(301 / 901) + 1.0) / 0.5, atol=0.05)
