"""The report: built from statistics, JSON round trip, event fields, no NaN."""

from __future__ import annotations

import json

import numpy as np
import pytest
from pydantic import ValidationError

from agents.segmentation.grains import grain_statistics
from agents.segmentation.report import MicrostructureReport, Timings, diameter_histogram
from agents.segmentation.segmenter import STEM_CLASSES
from tests.agents.segmentation.test_grains import square_grid


def report_of(label: np.ndarray) -> MicrostructureReport:
    stats = grain_statistics(label, STEM_CLASSES, 2.0)
    return MicrostructureReport.from_stats(
        stats, model="m", image_shape_px=label.shape, channels=2, pixel_nm=2.0, pixel_nm_source="argument",
        timings=Timings(segmentation_s=0.1, statistics_s=0.01, total_s=0.2),
    )  # fmt: skip


def test_the_report_round_trips_through_json_and_has_flat_event_fields() -> None:
    report = report_of(square_grid())
    again = MicrostructureReport.model_validate(json.loads(report.model_dump_json()))
    assert again == report
    assert report.interior_grain_count == len(report.equivalent_diameters_nm) == sum(report.diameter_histogram_counts)
    assert len(report.diameter_histogram_edges_nm) == len(report.diameter_histogram_counts) + 1
    assert report.secondary_phase_fraction == 0.0
    data = report.event_data()
    assert data["grain_count"] == 64 and data["fraction_grain_boundary"] > 0
    assert all(isinstance(v, (str, int, float, list)) for v in data.values())


def test_no_interior_grain_leaves_sizes_unset_with_a_warning() -> None:
    report = report_of(np.zeros((64, 64), np.uint8))
    assert report.median_grain_size_nm is None and report.diameter_histogram_counts == []
    assert "median_grain_size_nm" not in report.event_data()
    assert any("not measurable" in w for w in report.warnings)


def test_nan_and_unknown_fields_are_refused() -> None:
    report = report_of(square_grid())
    with pytest.raises(ValidationError):
        MicrostructureReport.model_validate({**report.model_dump(), "porosity": float("nan")})
    with pytest.raises(ValidationError):
        MicrostructureReport.model_validate({**report.model_dump(), "grain_size": 3.0})


def test_histogram_edges_are_log_spaced_and_count_everything() -> None:
    edges, counts = diameter_histogram(np.array([10.0, 20.0, 40.0, 80.0]), bins=3)
    assert edges[0] == 10.0 and edges[-1] == 80.0 and sum(counts) == 4
    assert edges[1] == pytest.approx(20.0)
    assert diameter_histogram(np.array([5.0]))[1] == [1] + [0] * 15
