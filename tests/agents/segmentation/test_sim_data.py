"""Simulated frames: the on-disk cache returns exactly what the simulator makes, and the acquisition."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from agents.segmentation import sim_data


def test_cached_frames_equal_simulated_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAINLOOP_CACHE_DIR", str(tmp_path))
    first = sim_data.cached_survey(12, (96, 96))
    assert len(list((tmp_path / "sim-frames").glob("*.npz"))) == 1
    expected = {"electrons_per_px": pytest.approx(624.0), "haadf_collection": 0.05, "bf_collection": 0.5}
    assert first.acquisition == expected

    def no_simulation(*args: object, **kwargs: object) -> None:
        raise AssertionError("a cached frame was simulated again")

    monkeypatch.setattr(sim_data, "simulated_survey", no_simulation)
    second = sim_data.cached_survey(12, (96, 96))
    np.testing.assert_array_equal(first.image, second.image)
    np.testing.assert_array_equal(first.label, second.label)
    np.testing.assert_array_equal(first.grain_id, second.grain_id)
    assert (second.recipe, second.acquisition) == (first.recipe, first.acquisition)


def test_a_corrupt_cache_file_is_simulated_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAINLOOP_CACHE_DIR", str(tmp_path))
    fresh = sim_data.cached_survey(13, (64, 64))
    (path,) = (tmp_path / "sim-frames").glob("*.npz")
    path.write_bytes(b"PK\x03\x04 truncated")
    again = sim_data.cached_survey(13, (64, 64))
    np.testing.assert_array_equal(fresh.image, again.image)
    np.testing.assert_array_equal(sim_data.simulated_survey(13, (64, 64)).image, again.image)
