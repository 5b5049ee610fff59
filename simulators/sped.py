"""Scanning precession electron diffraction (SPED) 4D scans of a specimen section.

Each scan point is one pixel of the section. Its pattern is the kinematical precession pattern of the
grain's phase and orientation (diffsims), rendered as Gaussian spots, plus the direct beam, a diffuse
halo and a flat background, a per-point scattering-strength jitter (thickness) and Poisson noise.
Pores give only the (brighter) direct beam and a weak background.

Conventions, pinned by tests/simulators/test_sped.py:

* Detector axes: ``pattern[row, col]`` with ``col = cx + g_x / cal`` and ``row = cy + g_y / cal`` —
  the column is +x (kx) and the row is +y (ky), as in pyxem's 4D signals and diffsims'
  ``get_diffraction_pattern``; no flips or transposes. The direct beam sits at
  ``cx = cy = (pattern_px - 1) / 2``, pyxem's default ``calibration.center``.
* Orientations: quaternions (w, x, y, z) in orix's `Orientation` convention (sample → crystal), given
  to diffsims unchanged as a `Rotation`, so a crystal vector g appears on the detector at
  ``(~O * g).xy``: e.g. O = 30° about z puts the (200) spot of Ba122 at −30° from +x.
* The detector spans ±`reciprocal_radius_per_a` along x and y; reflections out to its corners are shown.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Protocol

import numpy as np
from diffsims.generators.simulation_generator import SimulationGenerator
from orix.quaternion import Rotation
from pydantic import BaseModel, ConfigDict, Field

from simulators.phases import phase
from simulators.sample import ALL_PHASES, MATRIX_PHASE

__all__ = [
    "PORE_PHASE_ID",
    "SectionLike",
    "SpedConfig",
    "SpedFaults",
    "SpedScan",
    "iter_scan_rows",
    "simulate_scan",
    "spot_pattern",
    "spot_positions",
]

PORE_PHASE_ID = 255
"""`phase_id` / `true_phase` value of pores (vacuum)."""


class SpedConfig(BaseModel):
    """Detector, optics and dose of the simulated SPED acquisition. Every number is a [M] choice."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    beam_energy_kev: float = Field(200.0, gt=0, le=1000)
    precession_angle_deg: float = Field(0.5, ge=0, le=2, description="typical 0.3–1°")
    pattern_px: int = Field(128, ge=32, le=1024, description="square detector side")
    reciprocal_radius_per_a: float = Field(
        1.2, gt=0, description="|g| (Å⁻¹) at the middle of the detector edge; shows Ba122 up to (420)"
    )
    spot_sigma_px: float = Field(1.0, gt=0, description="Gaussian spot width (probe convergence, PSF)")
    excitation_error_max_per_a: float = Field(0.02, gt=0, description="relrod half-length ≈ 1/thickness")
    spot_counts_per_ms: float = Field(
        150.0, ge=0, description="integrated counts of the strongest Ba122 [001] reflection per ms"
    )
    direct_beam_counts_per_ms: float = Field(1500.0, ge=0, description="integrated direct-beam counts per ms")
    direct_beam_sigma_px: float = Field(1.5, gt=0)
    pore_direct_beam_factor: float = Field(1.5, ge=0, description="vacuum transmits the unscattered beam")
    halo_counts_per_px_per_ms: float = Field(
        1.0, ge=0, description="peak of the diffuse (inelastic/TDS) halo round the direct beam"
    )
    halo_width_per_a: float = Field(0.35, gt=0, description="Gaussian width of the halo in |q|")
    flat_counts_per_px_per_ms: float = Field(0.1, ge=0, description="flat diffuse background")
    pore_diffuse_factor: float = Field(0.2, ge=0, description="halo and flat background scale in pores")
    dark_counts_per_px: float = Field(0.02, ge=0, description="per frame, present even with the beam blanked")
    intensity_jitter: float = Field(
        0.1, ge=0, le=1, description="log-normal σ of per-point scattering strength (thickness)"
    )
    poisson_noise: bool = True
    dwell_ms: float = Field(20.0, gt=0, le=1000, description="typical 10–50 ms per pattern")
    step_nm: float = Field(10.0, gt=0, description="default scan step; the caller rasterises at this step")
    scan_shape: tuple[int, int] = Field((40, 40), description="default (ny, nx) scan points")

    @property
    def calibration_a_inv_per_px(self) -> float:
        """Reciprocal-space pixel size (Å⁻¹ per px)."""
        return 2.0 * self.reciprocal_radius_per_a / self.pattern_px

    @property
    def center_px(self) -> float:
        """Direct-beam position, same for row and column (pyxem's default centre)."""
        return (self.pattern_px - 1) / 2.0


@dataclass(frozen=True)
class SpedFaults:
    """Detector and beam faults for one acquisition."""

    detector_dropout_fraction: float = 0.0
    """Fraction of patterns that come back blank (all zeros): dead frames."""
    beam_blank: bool = False
    """The beam never reaches the specimen: frames hold only dark counts."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.detector_dropout_fraction <= 1.0:
            raise ValueError("detector_dropout_fraction must lie in [0, 1]")


@dataclass(frozen=True)
class SpedScan:
    """One 4D-STEM scan and the truth behind it (the truth is never shown to the controller)."""

    data: np.ndarray
    """(ny, nx, qy, qx) uint16 counts; detector axes as in the module docstring."""
    calibration_a_inv_per_px: float
    step_nm: float
    true_orientations: np.ndarray
    """(ny, nx, 4) float64 quaternions (w, x, y, z), orix Orientation convention; NaN in pores."""
    true_phase: np.ndarray
    """(ny, nx) uint8 index into ALL_PHASES, PORE_PHASE_ID (255) in pores."""
    dropped: np.ndarray
    """(ny, nx) bool: dead frames (all zeros)."""
    center_px: float = 63.5
    """Direct-beam position in pixels (row = col)."""


class SectionLike(Protocol):
    """What SPED needs of `simulators.microstructure.Section`."""

    grain_id: np.ndarray  # (H, W) int, -1 in pores
    phase_id: np.ndarray  # (H, W) uint8 index into ALL_PHASES, 255 in pores
    orientations: np.ndarray  # (n_grains, 4) quaternions (w, x, y, z), orix convention
    pixel_nm: float


@cache
def _generator(beam_energy_kev: float, precession_angle_deg: float) -> SimulationGenerator:
    return SimulationGenerator(accelerating_voltage=beam_energy_kev, precession_angle=precession_angle_deg)


def _simulation_radius(config: SpedConfig) -> float:
    # Out to the detector corners plus the tail of a spot just outside them.
    margin = 4.0 * config.spot_sigma_px * config.calibration_a_inv_per_px
    return float(np.sqrt(2.0) * config.reciprocal_radius_per_a + margin)


def _kinematical_spots(
    config: SpedConfig, phase_name: str, quaternions: np.ndarray
) -> list[tuple[np.ndarray, np.ndarray]]:
    """diffsims spots for each orientation: (n, 2) g_x, g_y in Å⁻¹ and raw kinematical intensities."""
    quaternions = np.asarray(quaternions, dtype=float).reshape(-1, 4)
    sim = _generator(config.beam_energy_kev, config.precession_angle_deg).calculate_diffraction2d(
        phase(phase_name),
        Rotation(quaternions),
        reciprocal_radius=_simulation_radius(config),
        with_direct_beam=False,
        max_excitation_error=config.excitation_error_max_per_a,
    )
    # One rotation gives a bare DiffractingVector, several an object array of them.
    coordinates = sim.coordinates
    coordinates = list(np.ravel(coordinates)) if isinstance(coordinates, np.ndarray) else [coordinates]
    spots = []
    for vectors in coordinates:
        xy = np.asarray(vectors.data, dtype=float).reshape(-1, 3)[:, :2]
        spots.append((xy, np.asarray(vectors.intensity, dtype=float).reshape(-1)))
    return spots


@cache
def _counts_per_intensity(config: SpedConfig) -> float:
    """Counts per ms per unit of diffsims intensity, fixed by the strongest Ba122 [001] reflection."""
    _, intensity = _kinematical_spots(config, MATRIX_PHASE, np.array([1.0, 0.0, 0.0, 0.0]))[0]
    return config.spot_counts_per_ms / float(intensity.max())


@cache
def _relative_scattering_power(phase_name: str) -> float:
    # Kinematical intensity per unit thickness scales as |F|²/V²: diffsims gives |F|², so rescale by
    # cell volume relative to the matrix phase (WC spots come out brighter than Ba122's, as they should).
    volume = phase(phase_name).structure.lattice.volume
    reference = phase(MATRIX_PHASE).structure.lattice.volume
    return float((reference / volume) ** 2)


def _to_detector(
    config: SpedConfig, phase_name: str, xy: np.ndarray, intensity: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spot rows, columns (px) and counts per dwell from diffsims g_x, g_y (Å⁻¹) and intensities."""
    cal, centre = config.calibration_a_inv_per_px, config.center_px
    scale = _counts_per_intensity(config) * _relative_scattering_power(phase_name) * config.dwell_ms
    return centre + xy[:, 1] / cal, centre + xy[:, 0] / cal, intensity * scale


def spot_positions(
    config: SpedConfig, phase_name: str, quaternion: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Spots of one orientation as (rows, cols, counts per dwell), before cropping to the detector."""
    xy, intensity = _kinematical_spots(config, phase_name, quaternion)[0]
    return _to_detector(config, phase_name, xy, intensity)


def _gaussian_profiles(centres: np.ndarray, sigma: float, n: int) -> np.ndarray:
    """(len(centres), n) unit-area 1-D Gaussians sampled at pixel centres."""
    pixels = np.arange(n, dtype=np.float64)
    profiles = np.exp(-0.5 * ((pixels[None, :] - centres[:, None]) / sigma) ** 2)
    return profiles / (np.sqrt(2.0 * np.pi) * sigma)


def _render(rows: np.ndarray, cols: np.ndarray, counts: np.ndarray, sigma: float, n: int) -> np.ndarray:
    # A sum of separable Gaussians is one matrix product: Σ_k c_k·gy_k ⊗ gx_k = Gyᵀ·diag(c)·Gx.
    gy = _gaussian_profiles(rows, sigma, n)
    gx = _gaussian_profiles(cols, sigma, n)
    return (gy.T * counts[None, :]) @ gx


def spot_pattern(config: SpedConfig, phase_name: str, quaternion: np.ndarray) -> np.ndarray:
    """Noise-free expected counts (qy, qx) of the diffracted spots alone for one dwell."""
    rows, cols, counts = spot_positions(config, phase_name, quaternion)
    return _render(rows, cols, counts, config.spot_sigma_px, config.pattern_px)


def _radial_images(config: SpedConfig) -> tuple[np.ndarray, np.ndarray]:
    """Unit-area direct beam and unit-peak diffuse halo, (qy, qx)."""
    n, centre = config.pattern_px, config.center_px
    beam = _render(np.array([centre]), np.array([centre]), np.array([1.0]), config.direct_beam_sigma_px, n)
    offsets = (np.arange(n) - centre) * config.calibration_a_inv_per_px
    q2 = offsets[:, None] ** 2 + offsets[None, :] ** 2
    halo = np.exp(-0.5 * q2 / config.halo_width_per_a**2)
    return beam, halo


@dataclass(frozen=True)
class _Plan:
    """Everything random or expensive, drawn once so that rows can be produced lazily."""

    templates: np.ndarray  # (n_templates, qy, qx) float32 spot counts per dwell
    template_index: np.ndarray  # (ny, nx) int, -1 in pores
    strength: np.ndarray  # (ny, nx) per-point scattering strength (log-normal, mean 1)
    dropped: np.ndarray  # (ny, nx) bool
    true_phase: np.ndarray  # (ny, nx) uint8
    true_orientations: np.ndarray  # (ny, nx, 4)


def _plan(config: SpedConfig, section: SectionLike, rng: np.random.Generator, faults: SpedFaults) -> _Plan:
    grain_id = np.asarray(section.grain_id)
    phase_id = np.asarray(section.phase_id).astype(np.int64)
    orientations = np.asarray(section.orientations, dtype=float).reshape(-1, 4)
    if grain_id.shape != phase_id.shape or grain_id.ndim != 2:
        raise ValueError("section.grain_id and section.phase_id must be 2-D arrays of the same shape")
    solid = (grain_id >= 0) & (phase_id != PORE_PHASE_ID)
    if np.any(phase_id[solid] >= len(ALL_PHASES)) or np.any(grain_id[solid] >= len(orientations)):
        raise ValueError("section refers to an unknown phase or grain")

    # One template per distinct (grain, phase): a grain is simulated once, however many points it covers.
    pairs, inverse = np.unique(np.stack([grain_id[solid], phase_id[solid]], axis=1), axis=0, return_inverse=True)
    template_index = np.full(grain_id.shape, -1, dtype=np.int64)
    template_index[solid] = inverse.reshape(-1)
    n = config.pattern_px
    templates = np.zeros((len(pairs), n, n), dtype=np.float32)
    for phase_index in np.unique(pairs[:, 1]):
        name = ALL_PHASES[int(phase_index)]
        members = np.flatnonzero(pairs[:, 1] == phase_index)
        spots = _kinematical_spots(config, name, orientations[pairs[members, 0]])
        for member, (xy, intensity) in zip(members, spots, strict=True):
            rows, cols, counts = _to_detector(config, name, xy, intensity)
            templates[member] = _render(rows, cols, counts, config.spot_sigma_px, n)

    # Random draws in a fixed order, independent of the faults, so a seed gives the same specimen signal.
    dropped = rng.random(grain_id.shape) < faults.detector_dropout_fraction
    sigma = config.intensity_jitter
    strength = np.exp(sigma * rng.standard_normal(grain_id.shape) - 0.5 * sigma**2)

    true_phase = np.where(solid, phase_id, PORE_PHASE_ID).astype(np.uint8)
    true_orientations = np.full((*grain_id.shape, 4), np.nan)
    true_orientations[solid] = orientations[grain_id[solid]]
    return _Plan(templates, template_index, strength, dropped, true_phase, true_orientations)


def _rows(
    config: SpedConfig, plan: _Plan, rng: np.random.Generator, faults: SpedFaults
) -> Iterator[tuple[int, np.ndarray]]:
    beam, halo = _radial_images(config)
    dwell = config.dwell_ms
    beam = (beam * config.direct_beam_counts_per_ms * dwell).astype(np.float32)
    halo = (halo * config.halo_counts_per_px_per_ms * dwell).astype(np.float32)
    flat = np.float32(config.flat_counts_per_px_per_ms * dwell)
    dark = np.float32(config.dark_counts_per_px)
    n = config.pattern_px
    for y in range(plan.template_index.shape[0]):
        index = plan.template_index[y]
        pore = index < 0
        nx = index.size
        if faults.beam_blank:
            mean = np.full((nx, n, n), dark, dtype=np.float32)
        else:
            strength = plan.strength[y].astype(np.float32)
            diffuse = np.where(pore, config.pore_diffuse_factor, 1.0).astype(np.float32) * strength
            # Whatever a thicker point scatters is taken from the direct beam.
            direct = np.where(pore, config.pore_direct_beam_factor, 1.0 / strength).astype(np.float32)
            mean = plan.templates[np.maximum(index, 0)] if len(plan.templates) else np.zeros((nx, n, n))
            mean = mean * np.where(pore, 0.0, strength).astype(np.float32)[:, None, None]
            mean += diffuse[:, None, None] * (halo + flat)
            mean += direct[:, None, None] * beam
            mean += dark
        counts = rng.poisson(mean) if config.poisson_noise else np.rint(mean)
        frames = np.clip(counts, 0, np.iinfo(np.uint16).max).astype(np.uint16)
        frames[plan.dropped[y]] = 0
        yield y, frames


def iter_scan_rows(
    config: SpedConfig, section: SectionLike, rng: np.random.Generator, *, faults: SpedFaults = SpedFaults()
) -> Iterator[tuple[int, np.ndarray]]:
    """Yield (row index, (nx, qy, qx) uint16 frames) row by row, as a streaming detector would.

    With an equally seeded `rng` the rows are exactly those of `simulate_scan`.
    """
    plan = _plan(config, section, rng, faults)
    yield from _rows(config, plan, rng, faults)


def simulate_scan(
    config: SpedConfig, section: SectionLike, rng: np.random.Generator, *, faults: SpedFaults = SpedFaults()
) -> SpedScan:
    """Acquire a whole SPED scan: one pattern per section pixel, step = `section.pixel_nm`."""
    plan = _plan(config, section, rng, faults)
    ny, nx = plan.template_index.shape
    data = np.empty((ny, nx, config.pattern_px, config.pattern_px), dtype=np.uint16)
    for y, frames in _rows(config, plan, rng, faults):
        data[y] = frames
    return SpedScan(
        data=data,
        calibration_a_inv_per_px=config.calibration_a_inv_per_px,
        step_nm=float(section.pixel_nm),
        true_orientations=plan.true_orientations,
        true_phase=plan.true_phase,
        dropped=plan.dropped,
        center_px=config.center_px,
    )
