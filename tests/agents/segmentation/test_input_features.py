"""Input features: the dose channels keep physical levels, and the dose comes from metadata, vacuum or default."""

from __future__ import annotations

import numpy as np
import pytest

from agents.segmentation.input_features import (
    STEM_FEATURES,
    dose_channel_indices,
    dose_electrons_per_px,
    feature_channels,
    input_features,
)


def survey(rng: np.random.Generator, electrons: float, pores: bool) -> np.ndarray:
    """HAADF/BF counts of a matrix (contrast 1) with a brighter particle (1.2) and maybe a vacuum hole."""
    haadf_level = np.ones((128, 128))
    haadf_level[20:60, 20:60] = 1.2
    bf_level = np.full((128, 128), 0.6)
    if pores:
        haadf_level[80:120, 70:120] = 0.0
        bf_level[80:120, 70:120] = 1.0
    haadf = rng.poisson(electrons * 0.05 * haadf_level) + rng.normal(0, 1, haadf_level.shape)
    bf = rng.poisson(electrons * 0.5 * bf_level) + rng.normal(0, 1, bf_level.shape)
    return np.stack([haadf, bf]).astype(np.float32)


def test_dose_channels_hold_physical_levels_whatever_the_dose() -> None:
    rng = np.random.default_rng(0)
    assert feature_channels(STEM_FEATURES, 2) == 7 and dose_channel_indices(STEM_FEATURES, 2) == (2, 3)
    for electrons in (300.0, 2400.0):
        image = survey(rng, electrons, pores=False)
        features = input_features(image, STEM_FEATURES, {"electrons_per_px": electrons})
        assert np.median(features[2, 70:80, 0:60]) == pytest.approx(1.0, abs=0.06)  # matrix
        assert np.median(features[2, 25:55, 25:55]) == pytest.approx(1.2, abs=0.06)  # the particle
        assert np.median(features[3]) == pytest.approx(0.6, abs=0.02)
    # percentile scaling alone cannot tell a frame of particle from a frame of matrix; the dose channel can
    particle = survey(rng, 624.0, pores=False)[:, 20:60, 20:60]
    matrix = survey(rng, 624.0, pores=False)[:, 70:110, 0:40]
    f_particle = input_features(particle, STEM_FEATURES, {"electrons_per_px": 624.0})
    f_matrix = input_features(matrix, STEM_FEATURES, {"electrons_per_px": 624.0})
    assert abs(np.median(f_particle[0]) - np.median(f_matrix[0])) < 0.05
    assert np.median(f_particle[2]) - np.median(f_matrix[2]) > 0.15


def test_dose_from_metadata_then_vacuum_then_default() -> None:
    rng = np.random.default_rng(1)
    with_hole = survey(rng, 1500.0, pores=True)
    assert dose_electrons_per_px(with_hole, STEM_FEATURES, {"electrons_per_px": 1400.0}) == (1400.0, "metadata")
    electrons, source = dose_electrons_per_px(with_hole, STEM_FEATURES)
    assert source == "vacuum" and electrons == pytest.approx(1500.0, rel=0.01)
    without = survey(rng, 1500.0, pores=False)
    assert dose_electrons_per_px(without, STEM_FEATURES, {"electrons_per_px": float("nan")}) == (624.0, "default")
