"""Sections grown from a SinteredBody: statistics against the body, label consistency, geometry."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from simulators.microstructure import LABEL_CLASSES, MicrostructureConfig, Specimen
from simulators.orientations import c_axes_in_sample
from simulators.power_diagram import PowerDiagram
from simulators.sample import ALL_PHASES, CONTAMINANT_PHASES, MATRIX_PHASE, SECONDARY_PHASES, SinteredBody

CONFIG = MicrostructureConfig()
IMPURE = {"Ba122": 0.82, "FeAs": 0.08, "KFe2As2": 0.05, "BaO": 0.02, "WC": 0.01, "Fe": 0.02}


def _body(density: float, grain_nm: float, **kw: object) -> SinteredBody:
    args: dict = dict(
        relative_density=density,
        grain_size_nm=grain_nm,
        phase_fractions=IMPURE,
        gb_oxide_fraction=0.02,
        composition_x=0.4,
        texture_fraction=0.0,
    )
    args.update(kw)
    return SinteredBody(**args)


@pytest.fixture(scope="module")
def dense() -> tuple[SinteredBody, Specimen]:
    body = _body(0.95, 100.0)
    return body, Specimen.grow(CONFIG, body, 3000.0, np.random.default_rng(11))


@pytest.mark.parametrize(
    ("density", "grain_nm", "seed"), [(0.97, 100.0, 1), (0.80, 80.0, 2), (0.65, 60.0, 3), (0.99, 180.0, 4)]
)
def test_raster_statistics_follow_the_body(density: float, grain_nm: float, seed: int) -> None:
    body = _body(density, grain_nm)
    specimen = Specimen.grow(CONFIG, body, 3000.0, np.random.default_rng(seed))
    section = specimen.rasterize((123.0, -456.0), (1200, 1200), 2.0)
    diameters = section.equivalent_diameters_nm()
    assert diameters.size > 30
    assert diameters.mean() == pytest.approx(grain_nm, rel=0.10)
    # Lognormal σ = 0.35 gives a coefficient of variation of 0.36.
    assert 0.25 < diameters.std() / diameters.mean() < 0.50
    assert section.porosity == pytest.approx(1.0 - density, abs=0.02)
    solid = section.phase_id != 255
    matrix_share = np.mean(section.phase_id[solid] == ALL_PHASES.index(MATRIX_PHASE))
    assert matrix_share == pytest.approx(IMPURE[MATRIX_PHASE], abs=0.04)


def test_labels_agree_with_the_truth_maps(dense: tuple[SinteredBody, Specimen]) -> None:
    _, specimen = dense
    s = specimen.rasterize((0.0, 0.0), (600, 700), 2.0)
    assert s.grain_id.dtype == np.int32 and s.phase_id.dtype == np.uint8 and s.label.dtype == np.uint8
    assert s.grain_id.shape == s.phase_id.shape == s.label.shape == s.gb_distance_nm.shape == (600, 700)
    assert len(LABEL_CLASSES) == 5 and set(np.unique(s.label)) <= set(range(5))
    pores = s.grain_id < 0
    np.testing.assert_array_equal(pores, s.label == 2)
    np.testing.assert_array_equal(pores, s.phase_id == 255)
    solid = ~pores
    np.testing.assert_array_equal(s.phase_id[solid], specimen.grain_phase_ids[s.grain_id[solid]])
    secondary_ids = [ALL_PHASES.index(p) for p in SECONDARY_PHASES]
    contaminant_ids = [ALL_PHASES.index(p) for p in CONTAMINANT_PHASES]
    assert np.all(np.isin(s.phase_id[s.label == 3], secondary_ids))
    assert np.all(np.isin(s.phase_id[s.label == 4], contaminant_ids))
    assert np.all(s.phase_id[s.label == 0] == ALL_PHASES.index(MATRIX_PHASE))
    # Every boundary pixel has a different grain within two pixels; interiors mostly do not. (The
    # raster's rim is left out: the neighbour across a boundary there lies outside the raster.)
    gid = s.grain_id
    core = (slice(2, -2), slice(2, -2))
    differs = np.zeros(gid[core].shape, bool)
    for dr in (-2, -1, 0, 1, 2):
        for dc in (-2, -1, 0, 1, 2):
            differs |= gid[2 + dr : 598 + dr, 2 + dc : 698 + dc] != gid[core]
    assert np.all(differs[s.label[core] == 1])
    assert np.mean(differs[s.label[core] == 0]) < 0.2
    # Boundaries form a thin network: a few per cent of the area for 100 nm grains at 2 nm/px.
    assert 0.02 < np.mean(s.label == 1) < 0.12


def test_pores_prefer_triple_junctions(dense: tuple[SinteredBody, Specimen]) -> None:
    _, specimen = dense
    s = specimen.rasterize((0.0, 0.0), (1000, 1000), 2.0)
    rng = np.random.default_rng(0)

    def grains_around(centres: np.ndarray, radii: np.ndarray) -> np.ndarray:
        # Distinct grains on a ring 6 nm outside each disc: 3 at a triple junction, 2 on a boundary.
        angle = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)
        ring = centres[:, None, :] + (radii[:, None, None] + 6.0) * np.stack([np.cos(angle), np.sin(angle)], axis=-1)
        px = np.clip((ring / 2.0).astype(int), 0, 999)
        ids = s.grain_id[px[..., 1], px[..., 0]]
        return np.array([len(np.unique(row[row >= 0])) for row in ids])

    inside = np.all((specimen.pore_centres_nm > 100.0) & (specimen.pore_centres_nm < 1900.0), axis=1)
    radii = specimen.pore_radii_nm[inside]
    at_pores = grains_around(specimen.pore_centres_nm[inside], radii)
    at_random = grains_around(rng.uniform(100.0, 1900.0, (len(radii), 2)), radii)
    assert len(radii) > 30
    assert np.mean(at_pores >= 3) > 0.6
    assert np.mean(at_pores >= 3) > np.mean(at_random >= 3) + 0.3


def test_specimen_is_periodic_and_resolution_independent(dense: tuple[SinteredBody, Specimen]) -> None:
    _, specimen = dense
    L = specimen.extent_nm
    a = specimen.rasterize((100.0, 200.0), (300, 300), 2.0)
    b = specimen.rasterize((100.0 + L, 200.0 - 2 * L), (300, 300), 2.0)
    np.testing.assert_array_equal(a.grain_id, b.grain_id)
    fine = specimen.rasterize((100.0, 200.0), (600, 600), 1.0)
    # The fine pixels (1, 1) of each 2×2 block sit 0.25 px from the coarse centre: nearly always agree.
    assert np.mean(fine.grain_id[1::2, 1::2] == a.grain_id) > 0.97
    assert fine.porosity == pytest.approx(a.porosity, abs=0.005)


def test_power_diagram_matches_brute_force() -> None:
    rng = np.random.default_rng(5)
    L = 1000.0
    seeds, weights = rng.uniform(0, L, (150, 2)), rng.uniform(0, 40.0, 150) ** 2
    diagram = PowerDiagram(seeds, weights, L)
    origin, shape, pixel = (950.0, -30.0), (70, 90), 1.7
    ids, dist = diagram.grid(origin, shape, pixel, with_distance=True)
    ids_only, _ = diagram.grid(origin, shape, pixel)
    y, x = np.meshgrid(
        origin[1] + (np.arange(shape[0]) + 0.5) * pixel, origin[0] + (np.arange(shape[1]) + 0.5) * pixel, indexing="ij"
    )
    rel = seeds[None, :, :] - np.stack([x.ravel(), y.ravel()], axis=1)[:, None, :]
    rel -= L * np.round(rel / L)
    power = np.sum(rel**2, axis=-1) - weights
    best = power.argmin(axis=1)
    np.testing.assert_array_equal(ids.ravel(), best)
    np.testing.assert_array_equal(ids_only, ids)
    sep = np.linalg.norm(rel - rel[np.arange(len(best)), best][:, None, :], axis=-1)
    gap = power - power[np.arange(len(best)), best][:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        to_line = np.where(sep > 0, gap / (2 * sep), np.inf).min(axis=1)
    np.testing.assert_allclose(dist.ravel(), to_line, atol=1e-3)


def test_gb_oxide_thickens_the_boundaries() -> None:
    thin = Specimen.grow(CONFIG, _body(0.97, 100.0, gb_oxide_fraction=0.0), 2500.0, np.random.default_rng(6))
    thick = Specimen.grow(CONFIG, _body(0.97, 100.0, gb_oxide_fraction=0.15), 2500.0, np.random.default_rng(6))
    assert thin.gb_oxide_nm == 0.0
    # 15 % of the area as a film on boundaries ~2/d long per area: a few nm thick.
    assert 3.0 < thick.gb_oxide_nm < 15.0
    gb_thin = np.mean(thin.rasterize((0, 0), (500, 500), 1.0).label == 1)
    gb_thick = np.mean(thick.rasterize((0, 0), (500, 500), 1.0).label == 1)
    assert gb_thick > 2.0 * gb_thin


def test_texture_reaches_the_matrix_grains() -> None:
    body = _body(0.97, 100.0, texture_fraction=1.0)
    specimen = Specimen.grow(CONFIG, body, 2000.0, np.random.default_rng(7))
    matrix = np.array(specimen.grain_phases) == MATRIX_PHASE
    tilt = np.degrees(np.arccos(np.abs(c_axes_in_sample(specimen.grain_orientations[matrix])[:, 2])))
    assert np.mean(tilt < 2.5 * CONFIG.texture_spread_deg) > 0.95
    assert specimen.grain_orientations.shape == (specimen.n_grains, 4)
    s = specimen.rasterize((0, 0), (64, 64), 2.0)
    assert s.orientations.shape == (specimen.n_grains, 4) and len(s.phases) == specimen.n_grains


def test_growth_is_deterministic_for_a_seed() -> None:
    body = _body(0.9, 90.0)
    a = Specimen.grow(CONFIG, body, 1500.0, np.random.default_rng(8)).rasterize((0, 0), (200, 200), 2.0)
    b = Specimen.grow(CONFIG, body, 1500.0, np.random.default_rng(8)).rasterize((0, 0), (200, 200), 2.0)
    c = Specimen.grow(CONFIG, body, 1500.0, np.random.default_rng(9)).rasterize((0, 0), (200, 200), 2.0)
    np.testing.assert_array_equal(a.label, b.label)
    np.testing.assert_array_equal(a.grain_id, b.grain_id)
    assert np.mean(a.grain_id != c.grain_id) > 0.5


def test_extent_adapts_to_the_grain_size() -> None:
    coarse = Specimen.grow(CONFIG, _body(0.97, 400.0), 1000.0, np.random.default_rng(10))
    assert coarse.extent_nm >= 8 * 400.0
    fine = Specimen.grow(
        CONFIG.model_copy(update={"max_grains": 500}), _body(0.97, 20.0), 5000.0, np.random.default_rng(10)
    )
    assert fine.extent_nm < 5000.0 and fine.grain_phases.count(MATRIX_PHASE) <= 520


def test_config_is_strict_and_frozen() -> None:
    with pytest.raises(ValidationError):
        MicrostructureConfig(no_such_constant=1.0)
    with pytest.raises(ValidationError):
        CONFIG.grain_size_log_sigma = 0.5  # type: ignore[misc]
    with pytest.raises(ValueError, match="unknown phases"):
        Specimen.grow(
            CONFIG, _body(0.9, 100.0, phase_fractions={"Ba122": 0.9, "MgB2": 0.1}), 2000.0, np.random.default_rng(0)
        )


def test_a_survey_frame_rasterises_over_a_large_specimen() -> None:
    body = _body(0.93, 100.0)
    specimen = Specimen.grow(CONFIG, body, 4096.0, np.random.default_rng(12))
    assert 500 < specimen.grain_phases.count(MATRIX_PHASE) < 3000
    section = specimen.rasterize((50.0, 50.0), (1024, 1024), 2.0)
    assert section.grain_id.shape == (1024, 1024)
    assert len(np.unique(section.grain_id[section.grain_id >= 0])) > 200
