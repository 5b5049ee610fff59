"""STEM survey imaging of a `Specimen`: HAADF and BF with dose noise and scan artefacts (science.md §6).

The ideal signals are rendered on a regular grid of sample positions (with a margin), then read at the
positions the beam actually visited — scan-line jitter, 50 Hz distortion of the fast scan and drift
accumulated over the frame time — bilinearly for the images and nearest-neighbour for the truth maps,
so `label` and `grain_id` stay aligned with the distorted image. Dose noise (Poisson) and detector read
noise (Gaussian) are added last, pixel by pixel.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.ndimage import map_coordinates

from simulators.microstructure import Section, Specimen
from simulators.orientations import quat_rotate
from simulators.sample import ALL_PHASES

_DEFAULT_HAADF = {"Ba122": 1.00, "KFe2As2": 0.75, "FeAs": 1.24, "Fe2As": 1.22, "BaO": 1.24, "Fe": 1.16, "WC": 3.96}


class StemConfig(BaseModel):
    """Modelling constants ([M]) of the microscope and its detectors."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    haadf_contrast: dict[str, float] = Field(
        default_factory=lambda: dict(_DEFAULT_HAADF),
        description="HAADF signal per unit thickness relative to Ba0.6K0.4Fe2As2; pores are vacuum (0)",
    )
    electrons_per_pa_us: float = Field(6.24, gt=0.0, description="1 pA for 1 µs delivers 6.24 electrons")
    haadf_collection: float = Field(0.05, gt=0.0, le=1.0, description="fraction of the dose into HAADF")
    bf_collection: float = Field(0.5, gt=0.0, le=1.0, description="fraction of an unscattered beam into BF")
    read_noise_counts: float = Field(1.0, ge=0.0)
    bf_absorption: float = Field(0.35, ge=0.0, description="BF loss per unit HAADF contrast × thickness")
    bf_diffraction_strength: float = Field(0.8, ge=0.0, le=1.0, description="BF loss of a grain in Bragg")
    bf_excitation_width_deg: float = Field(0.8, gt=0.0, description="angular width of an excitation")
    bf_max_g_per_nm: float = Field(5.5, gt=0.0, description="reflections beyond |g| are too weak to count")
    bf_g_decay_per_nm: float = Field(3.0, gt=0.0, description="reflection strength ∝ exp(−|g|/this)")
    bf_boundary_dip: float = Field(0.15, ge=0.0, le=1.0, description="BF loss on a boundary (strain)")
    wavelength_pm: float = Field(2.508, gt=0.0, description="200 kV electrons")
    lattice_a_nm: float = 0.3917
    lattice_c_nm: float = 1.330
    scan_jitter_px: float = Field(0.3, ge=0.0, description="rms per-line shift of the fast scan")
    drift_nm_per_s: float = Field(0.3, ge=0.0)
    line_distortion_px: float = Field(0.3, ge=0.0, description="amplitude of the mains pick-up on the scan")
    mains_hz: float = 50.0
    flyback_us: float = Field(100.0, ge=0.0, description="dead time at the end of each scan line")
    probe_current_drift_pct_per_min: float = Field(1.0, ge=0.0, description="rms of the linear drift rate")
    thickness_variation_rel: float = Field(0.05, ge=0.0, description="rms relative lamella thickness change")
    thickness_correlation_nm: float = Field(400.0, gt=0.0)
    pixel_nm: float = Field(2.0, gt=0.0)
    shape_px: int = Field(1024, ge=8)
    dwell_us: float = Field(10.0, gt=0.0, description="≈ 30 HAADF counts per matrix pixel at 10 pA")
    probe_current_pa: float = Field(10.0, gt=0.0)


@dataclass(frozen=True)
class StemFaults:
    beam_blank: bool = False
    extra_drift_nm_per_s: float = 0.0


@dataclass(frozen=True)
class SurveyImage:
    """One survey frame; `label` and `grain_id` are hidden truth, distorted exactly like the images."""

    haadf: np.ndarray  # (H, W) float32 counts
    bf: np.ndarray  # (H, W) float32 counts
    label: np.ndarray  # (H, W) uint8, simulators.microstructure.LABEL_CLASSES
    grain_id: np.ndarray  # (H, W) int32, −1 in pores
    pixel_nm: float
    dwell_us: float
    probe_current_pa: float
    origin_nm: tuple[float, float] = (0.0, 0.0)
    frame_time_s: float = 0.0


def acquire_survey(
    config: StemConfig,
    specimen: Specimen,
    rng: np.random.Generator,
    *,
    shape: tuple[int, int] | None = None,
    pixel_nm: float | None = None,
    dwell_us: float | None = None,
    probe_current_pa: float | None = None,
    origin_nm: tuple[float, float] = (0.0, 0.0),
    faults: StemFaults | None = None,
) -> SurveyImage:
    """Scan a survey frame; unset acquisition parameters come from `config` (1024², 2 nm, 10 µs, 10 pA)."""
    faults = faults or StemFaults()
    shape = shape or (config.shape_px, config.shape_px)
    pixel = float(pixel_nm or config.pixel_nm)
    dwell = float(dwell_us or config.dwell_us)
    current = float(probe_current_pa or config.probe_current_pa)
    H, W = shape

    # When the beam visits pixel (r, c), in seconds, and where it really is, in pixels.
    line_us = W * dwell + config.flyback_us
    t = (np.arange(H)[:, None] * line_us + np.arange(W)[None, :] * dwell) * 1e-6
    # Beyond a frame's width per frame the image is garbage anyway; the cap keeps the render bounded.
    drift_speed = min(
        config.drift_nm_per_s + faults.extra_drift_nm_per_s, max(H, W) * pixel / max(float(t[-1, -1]), 1e-6)
    )
    heading = rng.uniform(0.0, 2.0 * np.pi)
    dx = rng.normal(0.0, config.scan_jitter_px, (H, 1)) + config.line_distortion_px * np.sin(
        2.0 * np.pi * config.mains_hz * t + rng.uniform(0.0, 2.0 * np.pi)
    )
    dx = dx + drift_speed * np.cos(heading) * t / pixel
    dy = drift_speed * np.sin(heading) * t / pixel
    col = np.arange(W)[None, :] + dx
    row = np.arange(H)[:, None] + dy + np.zeros((1, W))

    # Render the ideal maps over the bounding box of the visited positions, plus a pixel for bilinear.
    c0, r0 = int(np.floor(col.min())) - 1, int(np.floor(row.min())) - 1
    big_shape = (int(np.ceil(row.max())) + 2 - r0, int(np.ceil(col.max())) + 2 - c0)
    big_origin = (origin_nm[0] + c0 * pixel, origin_nm[1] + r0 * pixel)
    section = specimen.rasterize(big_origin, big_shape, pixel)
    haadf_ideal, bf_ideal = _ideal_signals(config, specimen, section)
    thickness = _thickness(config, specimen, big_origin, big_shape, pixel)

    coords = np.stack([row - r0, col - c0])
    near_r = np.clip(np.rint(coords[0]).astype(np.intp), 0, big_shape[0] - 1)
    near_c = np.clip(np.rint(coords[1]).astype(np.intp), 0, big_shape[1] - 1)
    haadf_mean = map_coordinates(haadf_ideal * thickness, coords, order=1, mode="nearest")
    # Incoherent (thermal diffuse, high-angle) scattering removes electrons from the BF disc.
    bf_transmitted = bf_ideal * np.exp(-config.bf_absorption * haadf_ideal * thickness)
    bf_mean = map_coordinates(bf_transmitted, coords, order=1, mode="nearest")

    electrons = current * dwell * config.electrons_per_pa_us
    electrons = electrons * (1.0 + rng.normal(0.0, config.probe_current_drift_pct_per_min) / 100.0 * t / 60.0)
    if faults.beam_blank:
        electrons = np.zeros_like(t)
    haadf = _detect(rng, electrons * config.haadf_collection * haadf_mean, config.read_noise_counts)
    bf = _detect(rng, electrons * config.bf_collection * bf_mean, config.read_noise_counts)
    return SurveyImage(
        haadf=haadf,
        bf=bf,
        label=section.label[near_r, near_c],
        grain_id=section.grain_id[near_r, near_c],
        pixel_nm=pixel,
        dwell_us=dwell,
        probe_current_pa=current,
        origin_nm=(float(origin_nm[0]), float(origin_nm[1])),
        frame_time_s=H * line_us * 1e-6,
    )


def _detect(rng: np.random.Generator, mean: np.ndarray, read_noise: float) -> np.ndarray:
    counts = rng.poisson(np.clip(mean, 0.0, None)).astype(np.float32)
    counts += rng.normal(0.0, read_noise, mean.shape).astype(np.float32)
    return counts


def _ideal_signals(config: StemConfig, specimen: Specimen, section: Section) -> tuple[np.ndarray, np.ndarray]:
    """HAADF contrast (per unit thickness) and the BF diffraction factor (before absorption) per pixel."""
    contrast = np.array([config.haadf_contrast.get(p, 1.0) for p in ALL_PHASES] + [0.0])
    phase = np.where(section.phase_id == 255, len(ALL_PHASES), section.phase_id)
    haadf = contrast[phase]
    bragg = _bragg_darkening(config, specimen.grain_orientations)
    grain_bf = np.append(1.0 - config.bf_diffraction_strength * bragg, 1.0)
    bf = grain_bf[np.where(section.grain_id < 0, len(bragg), section.grain_id)]
    pores = section.grain_id < 0
    # Weigh the boundary's oxide film and strain zone by the pixel share they fill. The true distance is
    # needed: a film thicker than a few pixels (coarse grains) would, with a clipped distance, cover every
    # pixel, while the label map (`Specimen.rasterize`) bands the boundary only where dist < film / 2.
    pixel = section.pixel_nm
    dist = section.gb_distance_nm
    film = _pixel_share(dist, section.gb_oxide_nm, pixel)  # the film as capped (`Specimen.gb_film_nm`)
    haadf = np.where(pores, 0.0, haadf + film * (config.haadf_contrast.get("BaO", 1.24) - haadf))
    strain = _pixel_share(dist, 2.0, pixel)
    bf = np.where(pores, 1.0, bf * (1.0 - config.bf_boundary_dip * strain))
    # A GB-oxide pocket (a pixel whose phase is not its cell's) is one BaO crystallite across the junction
    # it sits on: HAADF already has its BaO contrast from `phase_id`; in BF no grain's Bragg contrast and
    # no boundary dip (taken off any Bragg condition), only the absorption of its HAADF contrast.
    pockets = ~pores & (section.phase_id != specimen.grain_phase_ids[np.maximum(section.grain_id, 0)])
    if pockets.any():
        bf = np.where(pockets, 1.0, bf)
    return haadf, bf


def _pixel_share(dist_nm: np.ndarray, width_nm: float, pixel_nm: float) -> np.ndarray:
    """Share of a pixel (1-D, across the boundary) filled by a layer `width_nm` wide on a boundary that
    lies `dist_nm` from the pixel centre."""
    lo = np.maximum(dist_nm - 0.5 * pixel_nm, -0.5 * width_nm)
    hi = np.minimum(dist_nm + 0.5 * pixel_nm, 0.5 * width_nm)
    return np.clip(hi - lo, 0.0, None) / pixel_nm


def _bragg_darkening(config: StemConfig, orientations: np.ndarray) -> np.ndarray:
    """Per grain 1 − exp(−Σ excited reflections): 0 far from any Bragg condition, → 1 on a zone axis.

    The beam (sample z) in crystal coordinates is q·ẑ; reflection g is excited when the beam makes the
    Bragg angle with its planes. Non-122 phases borrow the 122 reflections: their BF need only vary with
    orientation.
    """
    cell = np.array([config.lattice_a_nm, config.lattice_a_nm, config.lattice_c_nm])
    top = np.floor(config.bf_max_g_per_nm * cell).astype(int)
    hkl = np.stack(np.meshgrid(*(np.arange(-t, t + 1) for t in top), indexing="ij")).reshape(3, -1).T
    hkl = hkl[(hkl.sum(axis=1) % 2 == 0) & np.any(hkl != 0, axis=1)]  # body centring: h + k + l even
    g = hkl / cell  # 1/nm
    g_len = np.linalg.norm(g, axis=1)
    keep = g_len <= config.bf_max_g_per_nm
    g, g_len = g[keep], g_len[keep]
    weight = np.exp(-g_len / config.bf_g_decay_per_nm)  # higher orders scatter less
    bragg = np.arcsin(0.5 * config.wavelength_pm * 1e-3 * g_len)
    beam = quat_rotate(orientations, np.array([0.0, 0.0, 1.0]))
    tilt = np.arcsin(np.clip(beam @ (g / g_len[:, None]).T, -1.0, 1.0))
    width = np.deg2rad(config.bf_excitation_width_deg)
    excitation = np.exp(-0.5 * ((tilt - bragg) / width) ** 2)
    return 1.0 - np.exp(-excitation @ weight)


def _thickness(
    config: StemConfig, specimen: Specimen, origin: tuple[float, float], shape: tuple[int, int], pixel: float
) -> np.ndarray:
    """Relative lamella thickness: a smooth field fixed to the specimen (the same at every acquisition)."""
    if config.thickness_variation_rel == 0.0:
        return np.ones(shape)
    digest = hashlib.sha256(np.ascontiguousarray(specimen.seeds_nm[:8]).tobytes()).digest()
    modes = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    n = 8
    kmag = 2.0 * np.pi / config.thickness_correlation_nm * modes.uniform(0.5, 1.5, n)
    angle = modes.uniform(0.0, 2.0 * np.pi, n)
    phase = modes.uniform(0.0, 2.0 * np.pi, n)
    x = origin[0] + (np.arange(shape[1]) + 0.5) * pixel
    y = origin[1] + (np.arange(shape[0]) + 0.5) * pixel
    ax = kmag[:, None] * np.cos(angle)[:, None] * x[None, :] + phase[:, None]
    ay = kmag[:, None] * np.sin(angle)[:, None] * y[None, :]
    # cos(a + b) = cos a cos b − sin a sin b: a sum of outer products, no 2-D trigonometry.
    field = np.cos(ay).T @ np.cos(ax) - np.sin(ay).T @ np.sin(ax)
    return 1.0 + config.thickness_variation_rel * np.sqrt(2.0 / n) * field
