"""STEM survey images: phase contrast, dose noise, artefacts, truth alignment, faults, speed."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.ndimage import binary_erosion

from simulators.microstructure import MicrostructureConfig, Specimen
from simulators.orientations import axis_angle_to_quat, random_orientations
from simulators.sample import ALL_PHASES, MATRIX_PHASE, SinteredBody
from simulators.stem import StemConfig, StemFaults, SurveyImage, _bragg_darkening, acquire_survey

MIXED = {"Ba122": 0.50, "KFe2As2": 0.10, "FeAs": 0.10, "Fe2As": 0.08, "BaO": 0.06, "Fe": 0.08, "WC": 0.08}
QUIET = StemConfig(
    scan_jitter_px=0.0,
    drift_nm_per_s=0.0,
    line_distortion_px=0.0,
    thickness_variation_rel=0.0,
    probe_current_drift_pct_per_min=0.0,
    read_noise_counts=0.0,
)
SHAPE = (384, 384)


@pytest.fixture(scope="module")
def mixed() -> Specimen:
    body = SinteredBody(
        relative_density=0.92, grain_size_nm=120.0, phase_fractions=MIXED, gb_oxide_fraction=0.0, composition_x=0.4
    )
    return Specimen.grow(MicrostructureConfig(), body, 2500.0, np.random.default_rng(21))


def _phase_map(image: SurveyImage, specimen: Specimen) -> np.ndarray:
    phase = np.full(image.grain_id.shape, 255, dtype=np.int16)
    solid = image.grain_id >= 0
    phase[solid] = specimen.grain_phase_ids[image.grain_id[solid]]
    return phase


def _interior(mask: np.ndarray) -> np.ndarray:
    # Bilinear reading and the boundary band blur a pixel or two: judge phases by their interiors.
    return binary_erosion(mask, iterations=3)


def test_haadf_contrast_follows_the_phases(mixed: Specimen) -> None:
    image = acquire_survey(QUIET, mixed, np.random.default_rng(0), shape=(768, 768))
    phase = _phase_map(image, mixed)
    mean = {p: image.haadf[_interior(phase == i)].mean() for i, p in enumerate(ALL_PHASES)}
    mean["pore"] = image.haadf[_interior(phase == 255)].mean()
    matrix = mean[MATRIX_PHASE]
    for p in ALL_PHASES:
        assert mean[p] / matrix == pytest.approx(QUIET.haadf_contrast[p], rel=0.03), p
    assert mean["WC"] > mean["FeAs"] > mean["Fe"] > matrix > mean["KFe2As2"] > mean["pore"]
    assert mean["pore"] < 0.02 * matrix
    # 10 pA · 10 µs · 6.24 e/(pA µs) · 5 % collection ≈ 31 counts on the matrix.
    assert matrix == pytest.approx(31.2, rel=0.03)


def test_ordering_survives_the_default_artefacts(mixed: Specimen) -> None:
    image = acquire_survey(StemConfig(), mixed, np.random.default_rng(1), shape=(768, 768))
    phase = _phase_map(image, mixed)
    mean = {p: image.haadf[_interior(phase == i)].mean() for i, p in enumerate(ALL_PHASES)}
    heavy = min(mean[p] for p in ("FeAs", "Fe2As", "BaO", "Fe"))
    assert mean["WC"] > heavy > mean[MATRIX_PHASE] > mean["KFe2As2"] > image.haadf[_interior(phase == 255)].mean()
    # Pores are vacuum: dark in HAADF, bright in BF.
    assert image.bf[_interior(phase == 255)].mean() > 1.5 * image.bf[_interior(image.label == 0)].mean()


def test_noise_is_poisson_and_scales_with_dose(mixed: Specimen) -> None:
    stats = {}
    for dwell in (2.0, 8.0):
        image = acquire_survey(QUIET, mixed, np.random.default_rng(2), shape=SHAPE, dwell_us=dwell)
        matrix = image.haadf[_interior(image.label == 0)]
        stats[dwell] = (matrix.mean(), matrix.var())
        assert matrix.var() / matrix.mean() == pytest.approx(1.0, abs=0.06)
    assert stats[8.0][0] / stats[2.0][0] == pytest.approx(4.0, rel=0.03)
    snr = {d: m / np.sqrt(v) for d, (m, v) in stats.items()}
    assert snr[8.0] / snr[2.0] == pytest.approx(2.0, rel=0.06)


def test_read_noise_adds_in_quadrature(mixed: Specimen) -> None:
    noisy = QUIET.model_copy(update={"read_noise_counts": 4.0})
    image = acquire_survey(noisy, mixed, np.random.default_rng(3), shape=SHAPE)
    matrix = image.haadf[_interior(image.label == 0)]
    assert matrix.var() == pytest.approx(matrix.mean() + 16.0, rel=0.08)


def test_labels_follow_the_image_under_drift(mixed: Specimen) -> None:
    faults = StemFaults(extra_drift_nm_per_s=30.0)
    image = acquire_survey(StemConfig(), mixed, np.random.default_rng(4), shape=SHAPE, faults=faults)
    undistorted = mixed.rasterize((0.0, 0.0), SHAPE, 2.0)
    # 30 nm/s over a ~1.5 s frame moves the sample by ~20 px: the truth had to move with it.
    assert np.mean(undistorted.label == image.label) < 0.9
    pore = image.haadf[image.label == 2].mean()
    matrix = image.haadf[image.label == 0].mean()
    assert pore < 0.1 * matrix
    assert image.bf[image.label == 2].mean() > 1.5 * image.bf[image.label == 0].mean()


def test_without_artefacts_the_truth_is_the_plain_raster(mixed: Specimen) -> None:
    image = acquire_survey(QUIET, mixed, np.random.default_rng(5), shape=SHAPE, origin_nm=(300.0, 500.0))
    raster = mixed.rasterize((300.0, 500.0), SHAPE, 2.0)
    np.testing.assert_array_equal(image.label, raster.label)
    np.testing.assert_array_equal(image.grain_id, raster.grain_id)


def test_scan_jitter_shifts_whole_lines(mixed: Specimen) -> None:
    jittery = QUIET.model_copy(update={"scan_jitter_px": 2.0})
    image = acquire_survey(jittery, mixed, np.random.default_rng(6), shape=SHAPE)
    raster = mixed.rasterize((0.0, 0.0), SHAPE, 2.0)
    shifts = []
    for row in range(0, SHAPE[0], 16):
        agreement = [np.mean(np.roll(raster.grain_id[row], s)[8:-8] == image.grain_id[row, 8:-8]) for s in range(-6, 7)]
        shifts.append(int(np.argmax(agreement)) - 6)
    # Lines are displaced by whole-line offsets of about ±2 px, not all the same.
    assert np.std(shifts) > 1.0
    assert max(np.abs(shifts)) <= 6


def test_beam_blank_leaves_only_read_noise(mixed: Specimen) -> None:
    config = StemConfig()
    image = acquire_survey(config, mixed, np.random.default_rng(7), shape=SHAPE, faults=StemFaults(beam_blank=True))
    for signal in (image.haadf, image.bf):
        assert abs(float(signal.mean())) < 0.05
        assert float(signal.std()) == pytest.approx(config.read_noise_counts, rel=0.05)
    lit = acquire_survey(config, mixed, np.random.default_rng(7), shape=SHAPE)
    assert lit.haadf.mean() > 20.0 and lit.bf.mean() > 100.0


def test_acquisition_is_deterministic_for_a_seed(mixed: Specimen) -> None:
    a = acquire_survey(StemConfig(), mixed, np.random.default_rng(8), shape=(128, 160))
    b = acquire_survey(StemConfig(), mixed, np.random.default_rng(8), shape=(128, 160))
    c = acquire_survey(StemConfig(), mixed, np.random.default_rng(9), shape=(128, 160))
    np.testing.assert_array_equal(a.haadf, b.haadf)
    np.testing.assert_array_equal(a.bf, b.bf)
    np.testing.assert_array_equal(a.label, b.label)
    assert not np.array_equal(a.haadf, c.haadf)
    assert a.haadf.shape == a.bf.shape == a.label.shape == a.grain_id.shape == (128, 160)
    assert a.haadf.dtype == np.float32 and a.label.dtype == np.uint8 and a.grain_id.dtype == np.int32
    assert a.pixel_nm == 2.0 and a.dwell_us == 10.0 and a.probe_current_pa == 10.0
    assert a.frame_time_s == pytest.approx(128 * (160 * 10.0 + 100.0) * 1e-6)


def test_bf_contrast_depends_on_grain_orientation(mixed: Specimen) -> None:
    image = acquire_survey(QUIET, mixed, np.random.default_rng(10), shape=(768, 768))
    interior = _interior(image.label == 0)
    ids = image.grain_id[interior]
    counts = np.bincount(ids)
    big = np.flatnonzero(counts > 200)
    bf = np.bincount(ids, image.bf[interior])[big] / counts[big]
    haadf = np.bincount(ids, image.haadf[interior])[big] / counts[big]
    assert len(big) > 20
    assert bf.std() / bf.mean() > 0.12  # grains differ in BF by their Bragg conditions
    assert haadf.std() / haadf.mean() < 0.03  # but not in HAADF, which is incoherent


def test_zone_axes_are_darker_than_random_orientations() -> None:
    config = StemConfig()
    zone_axes = np.stack(
        [
            np.array([1.0, 0.0, 0.0, 0.0]),  # beam along [001]
            axis_angle_to_quat(np.array([0.0, 1.0, 0.0]), np.pi / 2),  # beam along [100]
            axis_angle_to_quat(np.array([1.0, -1.0, 0.0]), np.pi / 2),  # beam along [110]
        ]
    )
    assert np.all(_bragg_darkening(config, zone_axes) > 0.8)
    # Most grains in a random polycrystal are off any strong Bragg condition; a minority are dark.
    random = _bragg_darkening(config, random_orientations(np.random.default_rng(11), 2000))
    assert np.median(random) < 0.3 and np.percentile(random, 90) > 0.4


def test_a_full_survey_frame_has_the_default_shape(mixed: Specimen) -> None:
    image = acquire_survey(StemConfig(), mixed, np.random.default_rng(12))
    assert image.haadf.shape == image.bf.shape == image.label.shape == (1024, 1024)


def test_config_is_strict() -> None:
    with pytest.raises(ValidationError):
        StemConfig(unknown=1)
    assert StemConfig().haadf_contrast["WC"] == 3.96
