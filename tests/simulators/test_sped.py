"""SPED simulator: crystal structures, detector/orientation conventions, faults, determinism, speed."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
from diffsims.generators.simulation_generator import SimulationGenerator
from diffsims.utils.sim_utils import (
    get_atomic_scattering_factors,
    get_kinematical_intensities,
    get_scattering_params_dict,
)
from orix.quaternion import Orientation, Rotation
from orix.vector import Miller
from scipy import ndimage

from simulators.phases import phase
from simulators.sample import ALL_PHASES
from simulators.sped import (
    PORE_PHASE_ID,
    SpedConfig,
    SpedFaults,
    iter_scan_rows,
    simulate_scan,
    spot_pattern,
    spot_positions,
)

IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
GENERAL = Rotation.from_euler(np.deg2rad([[37.0, 23.0, 71.0]])).data[0]


@dataclass(frozen=True)
class _Section:
    grain_id: np.ndarray
    phase_id: np.ndarray
    orientations: np.ndarray
    pixel_nm: float = 10.0


def _voronoi_section(shape: tuple[int, int], n_grains: int, seed: int, pore_fraction: float = 0.05) -> _Section:
    rng = np.random.default_rng(seed)
    seeds = rng.uniform(0, shape[0], (n_grains, 2))
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    grain_id = ((yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2).argmin(-1)
    grain_phase = np.zeros(n_grains, dtype=np.uint8)
    # The first grains take the non-matrix phases in turn, so every phase gets simulated.
    extra = np.arange(1, len(ALL_PHASES))[: n_grains // 2]
    grain_phase[: extra.size] = extra
    phase_id = grain_phase[grain_id]
    pores = rng.random(shape) < pore_fraction
    grain_id[pores], phase_id[pores] = -1, PORE_PHASE_ID
    return _Section(grain_id.astype(np.int32), phase_id, Rotation.random(n_grains).data)


def _single_grain(quaternion: np.ndarray, shape: tuple[int, int] = (2, 3)) -> _Section:
    return _Section(np.zeros(shape, np.int32), np.zeros(shape, np.uint8), quaternion[None, :])


def _peaks(image: np.ndarray, threshold: float) -> np.ndarray:
    """(row, col) of local maxima above threshold."""
    local_max = ndimage.maximum_filter(image, size=5) == image
    return np.argwhere(local_max & (image > threshold))


# ---- crystal structures -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "space_group", "atoms_per_cell"),
    [
        ("Ba122", 139, 10),
        ("KFe2As2", 139, 10),
        ("FeAs", 62, 8),
        ("Fe2As", 129, 6),
        ("BaO", 225, 8),
        ("WC", 187, 2),
        ("Fe", 229, 2),
    ],
)
def test_phases_have_full_unit_cells(name: str, space_group: int, atoms_per_cell: int) -> None:
    p = phase(name)
    assert p.name == name
    assert p.space_group.number == space_group
    assert sum(atom.occupancy for atom in p.structure) == pytest.approx(atoms_per_cell)


def test_phase_names_match_the_sample_module() -> None:
    assert [phase(name).name for name in ALL_PHASES] == list(ALL_PHASES)
    assert phase("Ba122").structure.lattice.abcABG() == pytest.approx((3.917, 3.917, 13.30, 90, 90, 90))


def test_hexagonal_structure_factors_survive_orix_realignment() -> None:
    """WC's (⅓,⅔,½) carbon must give the textbook |F|² through orix + diffsims."""
    hkl = np.array([[1, 0, 0], [1, 0, 1], [1, 1, 1], [2, -1, 1], [1, 0, 2]], dtype=float)
    g = Miller(hkl=hkl, phase=phase("WC")).length
    simulated = get_kinematical_intensities(phase("WC").structure, hkl, g)
    params = get_scattering_params_dict("lobato")
    f_w, f_c = (get_atomic_scattering_factors(g**2, np.array([params[e]]), "lobato")[:, 0] for e in "WC")
    expected = np.abs(f_w + f_c * np.exp(2j * np.pi * hkl @ np.array([1 / 3, 2 / 3, 0.5]))) ** 2
    np.testing.assert_allclose(simulated, expected, rtol=1e-10)


# ---- detector axes and orientation convention --------------------------------------------------


@pytest.mark.parametrize(
    "quaternion",
    [IDENTITY, Rotation.from_axes_angles([0, 0, 1], 30, degrees=True).data[0], GENERAL],
    ids=["001", "001-rot30", "general"],
)
def test_rendered_pattern_equals_diffsims(quaternion: np.ndarray) -> None:
    """Our detector image is diffsims' own rendering of the same orix Rotation: no flips, no transposes."""
    config = SpedConfig()
    ours = spot_pattern(config, "Ba122", quaternion)
    sim = SimulationGenerator(config.beam_energy_kev, precession_angle=config.precession_angle_deg)
    simulation = sim.calculate_diffraction2d(
        phase("Ba122"),
        Rotation(quaternion),
        reciprocal_radius=1.8,
        with_direct_beam=False,
        max_excitation_error=config.excitation_error_max_per_a,
    )
    reference = simulation.get_diffraction_pattern(
        shape=(config.pattern_px, config.pattern_px),
        sigma=config.spot_sigma_px,
        calibration=config.calibration_a_inv_per_px,
        fast=False,
        normalize=False,
        clip_threshold=1e-12,
    )
    correlation = np.corrcoef(ours.ravel(), reference.ravel())[0, 1]
    assert correlation > 0.999
    # Every strong spot sits on the same pixel, so diffsims' centre is our centre too.
    ours_peaks = {tuple(p) for p in _peaks(ours, 0.1 * ours.max())}
    assert len(ours_peaks) >= 4
    assert ours_peaks == {tuple(p) for p in _peaks(reference, 0.1 * reference.max())}
    # Mirror images are clearly different patterns for the general orientation, so the test has teeth.
    if quaternion is GENERAL:
        assert np.corrcoef(ours.T.ravel(), reference.ravel())[0, 1] < 0.5


def test_orientation_convention_puts_200_at_minus_30_degrees() -> None:
    """O = 30° about z (orix, sample → crystal): crystal a* appears at ~O·a* = −30° from +x (column)."""
    config = SpedConfig()
    orientation = Orientation.from_axes_angles([0, 0, 1], 30, degrees=True)
    rows, cols, counts = spot_positions(config, "Ba122", orientation.data[0])
    dy, dx = rows - config.center_px, cols - config.center_px
    radius = np.hypot(dx, dy) * config.calibration_a_inv_per_px
    is_200 = np.abs(radius - 2 / 3.917) < 1e-3
    angles = np.sort(np.rad2deg(np.arctan2(dy[is_200], dx[is_200])))
    np.testing.assert_allclose(angles, [-120.0, -30.0, 60.0, 150.0], atol=1e-6)
    lab = (~orientation * Miller(hkl=[2, 0, 0], phase=phase("Ba122"))).data[0]
    assert np.rad2deg(np.arctan2(lab[1], lab[0])) == pytest.approx(-30.0)
    assert counts[is_200].min() > 0


def test_ba122_001_zone_axis_is_fourfold_with_110_and_200_at_the_right_radii() -> None:
    config = SpedConfig()
    clean = spot_pattern(config, "Ba122", IDENTITY)
    np.testing.assert_allclose(np.rot90(clean), clean, rtol=1e-6, atol=1e-6 * clean.max())

    scan = simulate_scan(config, _single_grain(IDENTITY), np.random.default_rng(3))
    frame = scan.data[1, 1].astype(float)
    assert np.corrcoef(np.rot90(frame).ravel(), frame.ravel())[0, 1] > 0.9
    peaks = _peaks(ndimage.gaussian_filter(frame, 1.0), threshold=40.0) - scan.center_px
    radii = np.hypot(peaks[:, 0], peaks[:, 1])
    angles = np.rad2deg(np.arctan2(peaks[:, 0], peaks[:, 1])) % 360
    cal = scan.calibration_a_inv_per_px
    g_110, g_200 = np.sqrt(2) / 3.917, 2 / 3.917  # 1/d with d110 = a/√2, d200 = a/2
    np.testing.assert_allclose([g_110, g_200], [0.361, 0.511], atol=1e-3)
    for g, first_angle in ((g_110, 45.0), (g_200, 0.0)):
        expected_px = g / cal
        ring = np.abs(radii - expected_px) <= 1.0
        assert ring.sum() == 4, (g, radii)
        np.testing.assert_allclose(np.sort(angles[ring]), first_angle + np.arange(4) * 90.0, atol=3.0)


# ---- scans -------------------------------------------------------------------------------------


def test_scan_shapes_truth_and_pores() -> None:
    config = SpedConfig(pattern_px=64)
    section = _voronoi_section((12, 10), n_grains=12, seed=1, pore_fraction=0.2)
    scan = simulate_scan(config, section, np.random.default_rng(0))
    assert scan.data.shape == (12, 10, 64, 64) and scan.data.dtype == np.uint16
    assert scan.calibration_a_inv_per_px == pytest.approx(2 * 1.2 / 64)
    assert scan.step_nm == 10.0
    pores = section.grain_id < 0
    assert np.array_equal(scan.true_phase == PORE_PHASE_ID, pores)
    assert np.array_equal(scan.true_phase[~pores], section.phase_id[~pores])
    expected = section.orientations[section.grain_id[~pores]]
    np.testing.assert_array_equal(scan.true_orientations[~pores], expected)
    assert np.isnan(scan.true_orientations[pores]).all()
    # Pores: direct beam and a weak background, no Bragg spots beyond the beam.
    yy, xx = np.mgrid[:64, :64] - scan.center_px
    outside_beam = np.hypot(yy, xx) > 8
    assert scan.data[pores][:, outside_beam].max() < 30
    assert scan.data[~pores][:, outside_beam].max() > 100


def test_iter_scan_rows_streams_the_same_data_and_seeds_are_deterministic() -> None:
    config = SpedConfig(pattern_px=64)
    section = _voronoi_section((6, 7), n_grains=5, seed=2)
    scan = simulate_scan(config, section, np.random.default_rng(11))
    rows = list(iter_scan_rows(config, section, np.random.default_rng(11)))
    assert [y for y, _ in rows] == list(range(6))
    assert all(frames.shape == (7, 64, 64) and frames.dtype == np.uint16 for _, frames in rows)
    np.testing.assert_array_equal(np.stack([frames for _, frames in rows]), scan.data)
    again = simulate_scan(config, section, np.random.default_rng(11))
    np.testing.assert_array_equal(again.data, scan.data)
    other = simulate_scan(config, section, np.random.default_rng(12))
    assert not np.array_equal(other.data, scan.data)


def test_detector_dropout_gives_blank_frames() -> None:
    config = SpedConfig(pattern_px=64)
    section = _voronoi_section((20, 20), n_grains=8, seed=3)
    faults = SpedFaults(detector_dropout_fraction=0.3)
    scan = simulate_scan(config, section, np.random.default_rng(5), faults=faults)
    assert 0.2 < scan.dropped.mean() < 0.4
    assert not scan.data[scan.dropped].any()
    assert (scan.data[~scan.dropped].reshape(-1, 64 * 64).sum(axis=1) > 0).all()


def test_beam_blank_gives_almost_no_signal() -> None:
    config = SpedConfig(pattern_px=64)
    section = _voronoi_section((8, 8), n_grains=4, seed=4)
    blank = simulate_scan(config, section, np.random.default_rng(6), faults=SpedFaults(beam_blank=True))
    lit = simulate_scan(config, section, np.random.default_rng(6))
    assert blank.data.mean() < 0.05
    assert blank.data.max() <= 3
    assert lit.data.mean() > 100 * blank.data.mean()


def test_faults_are_validated() -> None:
    with pytest.raises(ValueError, match="dropout"):
        SpedFaults(detector_dropout_fraction=1.5)


def test_a_full_default_scan_has_the_configured_shape() -> None:
    config = SpedConfig()
    section = _voronoi_section(config.scan_shape, n_grains=50, seed=7)
    scan = simulate_scan(config, section, np.random.default_rng(8))
    assert scan.data.shape == (40, 40, 128, 128)
    assert scan.data.dtype == np.uint16
