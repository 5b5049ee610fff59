"""Grains, boundary misorientations, Σ3 and texture of orientation maps: synthetic maps with known answers,
the vectorised symmetry reduction against orix, an `ang_io` round trip, and the real sdss-ebsd map."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from orix.crystal_map import CrystalMap, PhaseList, create_coordinate_arrays
from orix.quaternion import Misorientation, Orientation, Rotation
from orix.quaternion.symmetry import D4h, D6h, Oh

from agents.orientation.ang_io import MapError, load_map, save_map
from agents.orientation.grains import low_angle_fraction, misorientation_histogram, reconstruct_grains, sigma3_fraction
from agents.orientation.misorientation import (
    axis_angle_quaternion,
    disorientation_angle_deg,
    is_sigma3,
    misorientation,
)
from agents.orientation.report import orientation_report

SDSS_ANG = Path(__file__).resolve().parents[3] / ".." / "shared" / "data" / "sdss-ebsd" / "sdss_ferrite_austenite.ang"
IDENTITY = np.array([1.0, 0.0, 0.0, 0.0])
STEP_NM = 10.0


def make_map(
    quaternions: np.ndarray,
    phase_id: np.ndarray,
    phases: dict[int, tuple[str, str]],
    step_nm: float = STEP_NM,
) -> CrystalMap:
    """A CrystalMap on a square grid from (H, W, 4) quaternions and (H, W) phase ids (−1 = not indexed)."""
    rows, cols = phase_id.shape
    coords, _ = create_coordinate_arrays((rows, cols), (step_nm, step_nm))
    ids = sorted(phases)
    phase_list = PhaseList(names=[phases[i][0] for i in ids], point_groups=[phases[i][1] for i in ids], ids=ids)
    return CrystalMap(
        rotations=Rotation(quaternions.reshape(-1, 4)),
        phase_id=phase_id.ravel(),
        x=coords["x"],
        y=coords["y"],
        phase_list=phase_list,
        scan_unit="nm",
    )


def bicrystal(q_right: np.ndarray, point_group: str = "4/mmm", shape: tuple[int, int] = (12, 16)) -> CrystalMap:
    """Left half the identity, right half `q_right`, one phase."""
    rows, cols = shape
    q = np.tile(IDENTITY, (rows, cols, 1))
    q[:, cols // 2 :] = q_right
    return make_map(q, np.ones(shape, dtype=int), {1: ("122", point_group)})


def rz(angle_deg: float) -> np.ndarray:
    return axis_angle_quaternion((0, 0, 1), angle_deg)


# --- vectorised symmetry reduction against orix ---


@pytest.mark.parametrize("symmetry", [D4h, Oh, D6h])
def test_disorientation_angle_matches_orix(symmetry) -> None:
    o = Orientation(Rotation.random(400).data, symmetry=symmetry)
    a, b = o[:200], o[200:]
    reference = np.degrees(Misorientation(b * ~a, symmetry=(symmetry, symmetry)).reduce().angle)
    ours = disorientation_angle_deg(misorientation(a.data, b.data), symmetry.proper_subgroup.data)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_interphase_disorientation_matches_brute_force() -> None:
    # orix 0.15's Misorientation.reduce() with two different symmetries (Oh, D6h) returned angles up to ~118°
    # above the true minimum for a few per cent of random pairs, so the reference is the brute-force minimum
    # over all s_b·m·s_a, built with orix's own outer products
    a = Orientation(Rotation.random(150).data, symmetry=Oh)
    b = Orientation(Rotation.random(150).data, symmetry=D6h)
    m = Rotation((b * ~a).data)
    equivalents = D6h.proper_subgroup.outer(m).outer(Oh.proper_subgroup)
    reference = np.degrees(np.asarray(equivalents.angle)).min(axis=(0, 2))
    ours = disorientation_angle_deg(misorientation(a.data, b.data), Oh.proper_subgroup.data, D6h.proper_subgroup.data)
    np.testing.assert_allclose(ours, reference, atol=1e-6)


def test_sigma3_test_follows_brandon() -> None:
    cubic = Oh.proper_subgroup.data
    sigma3 = axis_angle_quaternion((1, 1, 1), 60.0)
    tilted = [Rotation(axis_angle_quaternion((1, -1, 0), dev)) * Rotation(sigma3) for dev in (5.0, 12.0)]
    m = np.vstack([sigma3, tilted[0].data, tilted[1].data, axis_angle_quaternion((0, 0, 1), 60.0)])
    # 60°<111> itself, 5° off (inside 15°/√3 = 8.66°), 12° off (outside), 60°<001> ≡ 30°<001> (not Σ3)
    np.testing.assert_array_equal(is_sigma3(m, cubic), [True, True, False, False])


# --- synthetic maps with known answers ---


def test_bicrystal_30_degrees_about_c_in_4mmm() -> None:
    grains = reconstruct_grains(bicrystal(rz(30.0)))
    b = grains.boundaries
    assert grains.n_grains == 2
    assert len(b.angle_deg) == 12  # one pixel edge per row
    np.testing.assert_allclose(b.angle_deg, 30.0, atol=1e-6)
    np.testing.assert_allclose(b.length_nm.sum(), 12 * STEP_NM * np.pi / 4)
    assert low_angle_fraction(grains, 9.0) == 0.0
    assert sigma3_fraction(grains) is None  # not cubic
    edges, fractions = misorientation_histogram(grains, 2.5)
    around_30 = (edges[:-1] >= 27.5) & (edges[1:] <= 32.5)  # 30° sits on a bin edge: either side may get it
    assert fractions[around_30].sum() == pytest.approx(1.0)


@pytest.mark.parametrize("angle_deg", [90.0, 180.0])
def test_symmetry_equivalent_rotations_make_one_grain(angle_deg: float) -> None:
    grains = reconstruct_grains(bicrystal(rz(angle_deg)))  # 4/mmm: 90° and 180° about [001] are symmetries
    assert grains.n_grains == 1
    assert len(grains.boundaries.angle_deg) == 0


def test_100_degrees_about_c_in_4mmm_reduces_to_10() -> None:
    grains = reconstruct_grains(bicrystal(rz(100.0)))
    np.testing.assert_allclose(grains.boundaries.angle_deg, 10.0, atol=1e-6)


def test_low_angle_bicrystal_is_all_below_critical() -> None:
    grains = reconstruct_grains(bicrystal(rz(7.0)))  # above the 5° threshold, below θc = 9°
    assert grains.n_grains == 2
    assert low_angle_fraction(grains, 9.0) == pytest.approx(1.0)
    merged = reconstruct_grains(bicrystal(rz(5.0)), threshold_deg=10.0)
    assert merged.n_grains == 1
    fine = reconstruct_grains(bicrystal(rz(5.0)), threshold_deg=2.0)
    assert fine.n_grains == 2 and low_angle_fraction(fine, 9.0) == pytest.approx(1.0)


def test_sigma3_twin_in_a_cubic_phase() -> None:
    twin = axis_angle_quaternion((1, 1, 1), 60.0)
    base = Rotation.from_axes_angles([0.3, -0.5, 0.8], 0.7).data[0]  # a general parent orientation
    q_right = Rotation(twin) * Rotation(base)
    xmap = bicrystal(q_right.data[0], "m-3m")
    q = np.asarray(xmap.rotations.data).reshape(12, 16, 4)
    q[:, :8] = base
    xmap = make_map(q, np.ones((12, 16), dtype=int), {1: ("austenite", "m-3m")})
    grains = reconstruct_grains(xmap)
    np.testing.assert_allclose(grains.boundaries.angle_deg, 60.0, atol=1e-6)
    assert sigma3_fraction(grains) == pytest.approx(1.0)


def test_not_indexed_points_and_small_grains() -> None:
    rows, cols = 10, 15
    q = np.tile(IDENTITY, (rows, cols, 1))
    q[:, 8:] = rz(30.0)
    q[2, 2] = rz(20.0)  # a one-point "grain": dropped by the minimum size
    phase = np.ones((rows, cols), dtype=int)
    phase[:, 7] = -1  # a not-indexed column between the two grains
    xmap = make_map(q, phase, {1: ("122", "4/mmm")})
    grains = reconstruct_grains(xmap, min_grain_px=2)
    assert grains.n_grains == 2
    assert grains.grain_id[2, 2] == 0 and (grains.grain_id[:, 7] == 0).all()
    assert len(grains.boundaries.angle_deg) == 0  # nothing borders across the gap or the dropped point
    report = orientation_report(xmap, grains)
    assert report.indexed_fraction == pytest.approx(1 - 10 / 150)
    assert report.phase_fractions["not_indexed"] == pytest.approx(10 / 150)
    assert reconstruct_grains(xmap, min_grain_px=1).n_grains == 3


def test_two_phases_interphase_boundary_is_kept_apart() -> None:
    rows, cols = 8, 12
    q = np.tile(IDENTITY, (rows, cols, 1))
    q[:, 4:8] = rz(30.0)
    phase = np.ones((rows, cols), dtype=int)
    phase[:, 8:] = 2  # same orientation as its neighbour, but another phase: a boundary all the same
    q[:, 8:] = rz(30.0)
    xmap = make_map(q, phase, {1: ("122", "4/mmm"), 2: ("FeAs", "mmm")})
    grains = reconstruct_grains(xmap)
    assert grains.n_grains == 3
    b = grains.boundaries
    assert b.same_phase.sum() == rows and (~b.same_phase).sum() == rows
    np.testing.assert_allclose(b.angle_deg[~b.same_phase], 0.0, atol=1e-6)
    report = orientation_report(xmap, grains)
    assert report.phase_fractions == pytest.approx({"122": 2 / 3, "FeAs": 1 / 3, "not_indexed": 0.0})
    assert report.interphase_boundary_fraction == pytest.approx(0.5)
    assert sum(report.misorientation_length_fractions) == pytest.approx(1.0)  # same-phase boundaries only
    assert report.low_angle_fraction == 0.0
    json.dumps(report.event_data())
    assert OrientationReportRoundTrip.check(report)


class OrientationReportRoundTrip:
    @staticmethod
    def check(report) -> bool:
        from agents.orientation.report import OrientationReport

        return OrientationReport.model_validate_json(report.model_dump_json()) == report


def test_texture_strength_separates_random_from_fibre() -> None:
    rng = np.random.default_rng(1)
    shape, n = (40, 40), 1600
    phases = {1: ("fcc", "m-3m")}
    ones = np.ones(shape, dtype=int)
    random_report = orientation_report(make_map(Rotation.random(n).data.reshape(*shape, 4), ones, phases))
    about_z = Rotation.from_axes_angles([0, 0, 1], rng.uniform(0, 2 * np.pi, n))

    def fibre_mrd(tilt_deg: float) -> float:
        # a ⟨001⟩ fibre: random rotations about z, the axis tilted by `tilt_deg` in a random direction
        axes = np.column_stack([rng.normal(size=(n, 2)), np.zeros(n)])
        q = (Rotation.from_axes_angles(axes, np.radians(tilt_deg)) * about_z).data.reshape(*shape, 4)
        return orientation_report(make_map(q, ones, phases)).texture_max_mrd

    sharp, nearly_sharp, spread = fibre_mrd(0.0), fibre_mrd(0.5), fibre_mrd(8.0)
    assert 0.8 < random_report.texture_max_mrd < 1.5
    # a sharp ⟨001⟩ fibre: κ·m/|G| = 131·8/24 ≈ 44 MRD, and no jump for a 0.5° tilt (orix's folded PDF jumped)
    assert sharp == pytest.approx(44.0, rel=0.05)
    assert nearly_sharp == pytest.approx(sharp, rel=0.05)
    assert 2.0 < spread < sharp


# --- ang_io ---


@pytest.mark.parametrize("suffix", [".ang", ".h5"])
def test_round_trip_through_files(tmp_path: Path, suffix: str) -> None:
    rng = np.random.default_rng(2)
    rows, cols = 9, 11
    q = Rotation.random(rows * cols).data.reshape(rows, cols, 4)
    q[:, :5] = q[0, 0]
    phase = np.where(np.arange(cols)[None, :] < 8, 1, 2).repeat(rows, axis=0)
    phase[rng.random((rows, cols)) < 0.05] = -1
    xmap = make_map(q, phase, {1: ("122", "4/mmm"), 2: ("FeAs", "mmm")}, step_nm=7.5)
    path = save_map(xmap, tmp_path / f"map{suffix}")
    back = load_map(path)
    assert back.shape == (rows, cols)
    assert back.dx == pytest.approx(7.5 if suffix == ".h5" else 0.0075)  # .ang is read back in µm
    before, after = orientation_report(xmap), orientation_report(back)
    assert after.phase_fractions == pytest.approx(before.phase_fractions)
    assert after.grain_count == before.grain_count
    np.testing.assert_allclose(after.misorientation_length_fractions, before.misorientation_length_fractions, atol=1e-9)
    assert after.step_nm == pytest.approx(7.5)


def test_load_map_errors(tmp_path: Path) -> None:
    with pytest.raises(MapError, match="no such"):
        load_map(tmp_path / "missing.ang")
    other = tmp_path / "map.txt"
    other.write_text("1 2 3\n")
    with pytest.raises(MapError, match="unsupported"):
        load_map(other)
    corrupt = tmp_path / "corrupt.ang"
    corrupt.write_text("# header\nnot numbers at all\n")
    with pytest.raises(MapError, match="cannot read"):
        load_map(corrupt)
    hexagonal = tmp_path / "hex.ang"
    hexagonal.write_text("# GRID: HexGrid\n# XSTEP: 1.0\n0 0 0 0 0 1 1 1\n")
    with pytest.raises(MapError, match="hexagonal"):
        load_map(hexagonal)
    with pytest.raises(MapError, match="cannot write"):
        save_map(bicrystal(rz(30.0)), tmp_path / "map.png")


# --- the real map: sdss-ebsd (super-duplex stainless steel, EMsoft dictionary indexing) ---


@pytest.fixture(scope="module")
def sdss():
    if not SDSS_ANG.is_file():
        pytest.skip(f"sdss-ebsd data not present at {SDSS_ANG} (it lives outside the repository)")
    xmap = load_map(SDSS_ANG)
    grains = reconstruct_grains(xmap)
    return xmap, grains, orientation_report(xmap, grains, source=str(SDSS_ANG))


def test_sdss_phases_and_grains(sdss) -> None:
    _, _, report = sdss
    assert report.scan_shape == (100, 117) and report.step_nm == pytest.approx(1500.0)
    # the README: austenite + ferrite, a super-duplex steel is made to be about half and half
    aus, fer = report.phases["austenite/austenite"], report.phases["ferrite/ferrite"]
    assert 0.4 < aus.area_fraction < 0.6 and 0.4 < fer.area_fraction < 0.6
    assert report.indexed_fraction == 1.0  # dictionary indexing assigns every point
    # measured 120 grains (92 austenite, 28 ferrite) at 5°, 4 px; 118–145 over thresholds 2–15° and 1–4 px.
    # Austenite is split by its many twins into more, smaller grains than the ferrite.
    assert 90 <= report.grain_count <= 160
    assert aus.grain_count > 2 * fer.grain_count
    assert aus.median_grain_size_nm < fer.median_grain_size_nm
    # a 100×117 map of ~12 µm grains at 1.5 µm steps: median ECD must be several steps and below the map size
    assert 5 * report.step_nm < report.median_grain_size_nm < 50_000


def test_sdss_boundaries_twins_and_orientation_relationship(sdss) -> None:
    _, grains, report = sdss
    aus, fer = report.phases["austenite/austenite"], report.phases["ferrite/ferrite"]
    # annealed austenite (low stacking-fault energy) is full of Σ3 annealing twins: measured 0.69 of the
    # austenite–austenite boundary length; bcc ferrite does not twin on annealing (measured 0.09)
    assert aus.sigma3_fraction > 0.4
    assert fer.sigma3_fraction < 0.25
    # recrystallised duplex steel has almost no low-angle boundaries: measured 0.1 % below 9°
    assert report.low_angle_fraction < 0.05
    # austenite/ferrite interfaces follow Kurdjumov–Sachs-like relationships (42.85°; Nishiyama–Wassermann
    # 45.99°): the median interphase misorientation (measured 42.95°) must lie near them, far from the
    # random-pair median of ~40° with its wide spread
    b = grains.boundaries
    interphase = b.angle_deg[~b.same_phase]
    assert 40.0 < np.median(interphase) < 46.0
    assert 0.3 < report.interphase_boundary_fraction < 0.9


def test_sdss_boundary_angles_match_orix(sdss) -> None:
    xmap, grains, _ = sdss
    b = grains.boundaries
    arrays = grains.arrays
    q = arrays.quaternions.reshape(-1, 4)
    sel = np.flatnonzero(b.same_phase)[:300]
    symmetry = xmap.phases[int(b.phase_a[sel[0]])].point_group
    a = Orientation(q[b.point_a[sel]], symmetry=symmetry)
    c = Orientation(q[b.point_b[sel]], symmetry=symmetry)
    reference = np.degrees(Misorientation(c * ~a, symmetry=(symmetry, symmetry)).reduce().angle)
    np.testing.assert_allclose(b.angle_deg[sel], reference, atol=1e-6)
