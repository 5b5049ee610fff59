"""A 2-D section of a sintered body: Laguerre grains, second-phase particles, pores and GB oxide.

A `Specimen` is continuous (seed points, power weights, pore discs) and periodic over a square of side
`extent_nm`, so it can be rasterised at any pixel size and origin: the STEM survey, the SPED scan and
the benchmarks all look at the same grains. Grains are power-weighted Voronoi (Laguerre) cells whose
weights are relaxed until every cell has a prescribed area, drawn so that matrix grains have a lognormal
equivalent diameter with mean `body.grain_size_nm`; pores are discs placed preferentially on triple
junctions, carved out afterwards, and the cells' solid areas are re-targeted around them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from simulators.orientations import random_orientations, textured_orientations
from simulators.power_diagram import PowerDiagram, paint_discs
from simulators.sample import ALL_PHASES, CONTAMINANT_PHASES, MATRIX_PHASE, SECONDARY_PHASES, SinteredBody

LABEL_CLASSES = ("matrix", "grain_boundary", "pore", "secondary_phase", "contamination")
PORE_PHASE_ID = 255
OXIDE_POCKET_PHASE = "BaO"
"""What the GB oxide beyond the film cap is imaged as (a secondary phase, label 3)."""


class MicrostructureConfig(BaseModel):
    """Modelling constants ([M]) of the section generator."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    grain_size_log_sigma: float = Field(0.35, ge=0.0, le=1.0, description="lognormal σ of grain diameter")
    secondary_size_rel: float = Field(0.6, gt=0.0, description="secondary-phase particle size / grain size")
    contaminant_size_rel: float = Field(0.3, gt=0.0, description="wear-debris particle size / grain size")
    particle_log_sigma: float = Field(0.3, ge=0.0, le=1.0)
    pore_size_rel: float = Field(0.35, gt=0.0, description="mean pore diameter / grain size")
    pore_log_sigma: float = Field(0.4, ge=0.0, le=1.0)
    pore_junction_share: float = Field(0.7, ge=0.0, le=1.0, description="pores centred on triple junctions")
    pore_boundary_share: float = Field(0.25, ge=0.0, le=1.0, description="pores on two-grain boundaries")
    pore_jitter_rel: float = Field(0.05, ge=0.0, description="pore-centre scatter / grain size")
    gb_width_nm: float = Field(2.0, gt=0.0, description="width of the grain-boundary class in label maps")
    gb_min_width_px: float = Field(1.5, ge=1.0, description="label band floor; ≥ √2 px keeps it 4-closed")
    texture_spread_deg: float = Field(15.0, ge=0.0, description="c-axis spread of textured grains")
    gb_oxide_thickness_scale: float = Field(1.0, gt=0.0, description="film = scale·fraction/(GB length/area)")
    gb_oxide_film_max_nm: float = Field(
        6.0, gt=0.0, description="thickest GB oxide film; the excess sits as BaO pockets on triple junctions"
    )
    relaxation_iterations: int = Field(6, ge=1, description="Lloyd + weight steps while growing")
    retarget_iterations: int = Field(3, ge=0, description="weight-only steps after carving pores")
    max_grains: int = Field(12000, ge=100, description="a finer section is grown on a smaller periodic square")
    grid_px_per_grain: float = Field(150.0, ge=20.0, description="coarse-grid pixels per matrix grain")
    max_grid_px: int = Field(1024, ge=128)


@dataclass(frozen=True)
class Section:
    """One raster of a specimen: ground truth for the instruments, never shown to the controller.

    Pixel (r, c) samples the point ``origin_nm + ((c + 0.5)·pixel_nm, (r + 0.5)·pixel_nm)``.
    """

    grain_id: np.ndarray  # (H, W) int32, −1 in pores
    phase_id: np.ndarray  # (H, W) uint8 index into ALL_PHASES, 255 in pores
    label: np.ndarray  # (H, W) uint8 index into LABEL_CLASSES
    gb_distance_nm: np.ndarray  # (H, W) float32 distance from the pixel centre to its cell's boundary
    pixel_nm: float
    origin_nm: tuple[float, float]
    orientations: np.ndarray  # (n_grains, 4) quaternions of the specimen, indexed by grain_id
    phases: tuple[str, ...]  # phase name per grain (pixels of a GB-oxide pocket: phase_id BaO, label 3)
    gb_oxide_nm: float = 0.0  # thickness of the oxide film on every grain boundary (capped; as imaged)

    def equivalent_diameters_nm(self, phase: str | None = MATRIX_PHASE) -> np.ndarray:
        """Area-equivalent diameters of grains lying wholly inside the raster (of `phase`, or all if None).

        Pore pixels do not count as grain area; boundary pixels do (they belong to their grain).
        """
        gid = self.grain_id
        n = len(self.phases)
        area_px = np.bincount(gid[gid >= 0].ravel(), minlength=n)
        edge = np.concatenate([gid[0], gid[-1], gid[:, 0], gid[:, -1]])
        keep = area_px > 0
        keep[edge[edge >= 0]] = False
        if phase is not None:
            keep &= np.asarray(self.phases) == phase
        return np.sqrt(4.0 * area_px[keep] / np.pi) * self.pixel_nm

    @property
    def porosity(self) -> float:
        return float(np.mean(self.grain_id < 0))


def _lognormal(rng: np.random.Generator, mean: float, log_sigma: float, n: int) -> np.ndarray:
    """Lognormal draws with the given arithmetic mean."""
    return mean * np.exp(rng.normal(-0.5 * log_sigma**2, log_sigma, n))


def _stochastic_count(rng: np.random.Generator, expected: float) -> int:
    whole = int(np.floor(expected))
    return whole + int(rng.random() < expected - whole)


@dataclass(eq=False, repr=False)
class Specimen:
    """A periodic square section of one sintered body, extent_nm on a side; see the module docstring.

    Cell i (a grain or a second-phase particle) is seed i with power weight i; `grain_orientations[i]`
    and `grain_phases[i]` describe it. Pores are discs carved out of the cells.
    """

    config: MicrostructureConfig
    extent_nm: float
    seeds_nm: np.ndarray  # (n, 2)
    weights_nm2: np.ndarray  # (n,)
    grain_orientations: np.ndarray  # (n, 4) quaternions, see simulators.orientations
    grain_phases: list[str]
    pore_centres_nm: np.ndarray  # (m, 2)
    pore_radii_nm: np.ndarray  # (m,)
    gb_oxide_nm: float  # GB oxide area / boundary length: the film it makes on every boundary, uncapped
    oxide_centres_nm: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))  # (k, 2) BaO pockets
    oxide_radii_nm: np.ndarray = field(default_factory=lambda: np.zeros(0))  # (k,)

    def __post_init__(self) -> None:
        self.diagram = PowerDiagram(self.seeds_nm, self.weights_nm2, self.extent_nm)
        self.grain_phase_ids = np.array([ALL_PHASES.index(p) for p in self.grain_phases], dtype=np.uint8)

    @property
    def n_grains(self) -> int:
        return len(self.grain_phases)

    @property
    def gb_film_nm(self) -> float:
        """The oxide film on every boundary as imaged: `gb_oxide_nm` capped at `gb_oxide_film_max_nm`."""
        return min(self.gb_oxide_nm, self.config.gb_oxide_film_max_nm)

    @classmethod
    def grow(
        cls, config: MicrostructureConfig, body: SinteredBody, extent_nm: float, rng: np.random.Generator
    ) -> Specimen:
        """Build the section of `body` over a periodic square of about extent_nm (seeded by `rng`).

        The side is widened to 8 grain diameters or narrowed to hold `config.max_grains` matrix grains
        when needed (read `extent_nm` of the result); windows beyond it see the periodic continuation.
        """
        grain_nm = float(body.grain_size_nm)
        grain_area = np.pi / 4.0 * grain_nm**2 * np.exp(config.grain_size_log_sigma**2)
        extent_nm = float(np.clip(extent_nm, 8.0 * grain_nm, np.sqrt(config.max_grains * grain_area)))
        unknown = set(body.phase_fractions) - set(ALL_PHASES)
        if unknown:
            raise ValueError(f"unknown phases {sorted(unknown)}; expected some of {ALL_PHASES}")
        porosity = float(np.clip(1.0 - body.relative_density, 0.0, 0.6))
        area = extent_nm**2
        phases, targets = _draw_cells(config, body, area * (1.0 - porosity), rng)
        n = len(phases)

        matrix_cells = max(1, phases.count(MATRIX_PHASE))
        grid = int(np.clip(np.sqrt(matrix_cells * config.grid_px_per_grain), 128, config.max_grid_px))
        pixel = extent_nm / grid

        # Phase 1: cells fill the whole square with areas in proportion to their solid targets.
        seeds = rng.uniform(0.0, extent_nm, (n, 2))
        weights = targets / np.pi / (1.0 - porosity)
        fill_targets = targets / targets.sum() * area
        for _ in range(config.relaxation_iterations):
            ids = PowerDiagram(seeds, weights, extent_nm).grid((0.0, 0.0), (grid, grid), pixel)[0]
            areas, centroids = _areas_and_centroids(ids, seeds, pixel, extent_nm)
            seeds = np.where((areas > 0)[:, None], centroids, seeds) % extent_nm
            weights = weights + (fill_targets - areas) / np.pi
        ids = PowerDiagram(seeds, weights, extent_nm).grid((0.0, 0.0), (grid, grid), pixel)[0]

        # Phase 2: pores on junctions and boundaries until the union covers the porosity.
        pore_c, pore_r, pore_mask = _place_pores(config, ids, grain_nm, porosity, pixel, extent_nm, rng)

        # Phase 3: re-target the solid area of every cell around the fixed pores.
        for _ in range(config.retarget_iterations if porosity > 0 else 0):
            solid = np.bincount(ids[~pore_mask], minlength=n) * pixel**2
            weights = weights + (targets - solid) / np.pi
            ids = PowerDiagram(seeds, weights, extent_nm).grid((0.0, 0.0), (grid, grid), pixel)[0]

        boundary_per_area = _boundary_length_per_area(ids, pore_mask, pixel, area)
        oxide_nm = config.gb_oxide_thickness_scale * body.gb_oxide_fraction / max(boundary_per_area, 1e-9)
        # The film beyond the cap gathers in pockets on triple junctions. They draw from their own generator
        # (fixed by the geometry), so `rng` — and a frame acquired with it — is untouched by them.
        excess_area = max(0.0, oxide_nm - config.gb_oxide_film_max_nm) * boundary_per_area * area
        oxide_c, oxide_r = _oxide_pockets(config, ids, pore_mask, seeds, weights, pixel, extent_nm, excess_area)

        is_matrix = np.array([p == MATRIX_PHASE for p in phases])
        orientations = random_orientations(rng, n)
        orientations[is_matrix] = textured_orientations(
            rng, int(is_matrix.sum()), body.texture_fraction, config.texture_spread_deg
        )
        return cls(
            config,
            float(extent_nm),
            seeds,
            weights,
            orientations,
            phases,
            pore_c,
            pore_r,
            float(oxide_nm),
            oxide_c,
            oxide_r,
        )

    def rasterize(self, origin_nm: tuple[float, float], shape: tuple[int, int], pixel_nm: float) -> Section:
        """Sample the specimen on a regular grid (periodic beyond the extent; see `Section`)."""
        shape = (int(shape[0]), int(shape[1]))
        ids, dist = self.diagram.grid(origin_nm, shape, pixel_nm, with_distance=True)
        pores = np.zeros(shape, dtype=bool)
        lo = np.asarray(origin_nm, dtype=float)
        hi = lo + np.array([shape[1], shape[0]]) * pixel_nm
        centres, radii = _disc_images(self.pore_centres_nm, self.pore_radii_nm, self.extent_nm, lo, hi)
        paint_discs(pores, (centres - lo) / pixel_nm, radii / pixel_nm)

        phase_id = self.grain_phase_ids[ids]
        label = np.zeros(shape, dtype=np.uint8)
        label[np.isin(phase_id, [ALL_PHASES.index(p) for p in SECONDARY_PHASES])] = 3
        label[np.isin(phase_id, [ALL_PHASES.index(p) for p in CONTAMINANT_PHASES])] = 4
        half_width = 0.5 * max(self.config.gb_width_nm, self.config.gb_min_width_px * pixel_nm, self.gb_film_nm)
        label[dist < half_width] = 1
        if len(self.oxide_radii_nm):
            pockets = np.zeros(shape, dtype=bool)
            centres, radii = _disc_images(self.oxide_centres_nm, self.oxide_radii_nm, self.extent_nm, lo, hi)
            paint_discs(pockets, (centres - lo) / pixel_nm, radii / pixel_nm)
            phase_id[pockets] = ALL_PHASES.index(OXIDE_POCKET_PHASE)
            label[pockets] = 3
        label[pores] = 2
        ids[pores] = -1
        phase_id[pores] = PORE_PHASE_ID
        origin = (float(origin_nm[0]), float(origin_nm[1]))
        return Section(
            ids,
            phase_id,
            label,
            dist,
            float(pixel_nm),
            origin,
            self.grain_orientations.view(),
            tuple(self.grain_phases),
            self.gb_film_nm,
        )


def _draw_cells(
    config: MicrostructureConfig, body: SinteredBody, solid_area: float, rng: np.random.Generator
) -> tuple[list[str], np.ndarray]:
    """Phase and target solid area of every cell; phases' areas follow body.phase_fractions."""
    fractions = {p: max(0.0, float(f)) for p, f in body.phase_fractions.items()}
    total = sum(fractions.values()) or 1.0
    phases: list[str] = []
    areas: list[np.ndarray] = []
    for phase in ALL_PHASES:
        budget = solid_area * fractions.get(phase, 0.0) / total
        if budget <= 0.0:
            continue
        if phase == MATRIX_PHASE:
            mean_d, sigma = body.grain_size_nm, config.grain_size_log_sigma
        elif phase in CONTAMINANT_PHASES:
            mean_d, sigma = body.grain_size_nm * config.contaminant_size_rel, config.particle_log_sigma
        else:
            mean_d, sigma = body.grain_size_nm * config.secondary_size_rel, config.particle_log_sigma
        mean_area = np.pi / 4.0 * mean_d**2 * np.exp(sigma**2)
        expected = budget / mean_area
        count = max(1, round(expected)) if phase == MATRIX_PHASE else _stochastic_count(rng, expected)
        if count == 0:
            continue
        a = np.pi / 4.0 * _lognormal(rng, mean_d, sigma, count) ** 2
        if expected >= 1.0:
            a *= budget / a.sum()  # hit the phase fraction exactly; rare phases keep their natural size
        phases += [phase] * count
        areas.append(a)
    if not phases:
        raise ValueError("body.phase_fractions has no positive fraction")
    return phases, np.concatenate(areas)


def _areas_and_centroids(ids: np.ndarray, seeds: np.ndarray, pixel: float, extent: float) -> tuple:
    """Cell areas and periodic centroids on a grid covering the whole square."""
    n, flat = len(seeds), ids.ravel()
    gx, gy = np.meshgrid(*2 * [(np.arange(ids.shape[0]) + 0.5) * pixel])
    count = np.bincount(flat, minlength=n)
    shift = np.zeros_like(seeds)
    for axis, grid in enumerate((gx, gy)):
        d = grid.ravel() - seeds[flat, axis]
        d -= extent * np.round(d / extent)  # a cell straddling the seam averages its halves, not L
        shift[:, axis] = np.bincount(flat, d, minlength=n) / np.maximum(count, 1)
    return count * pixel**2, seeds + shift


def _place_pores(
    config: MicrostructureConfig,
    ids: np.ndarray,
    grain_nm: float,
    porosity: float,
    pixel: float,
    extent: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pore discs (centres, radii) whose union covers `porosity` of the periodic grid, and that mask."""
    mask = np.zeros(ids.shape, dtype=bool)
    if porosity <= 0.0:
        return np.zeros((0, 2)), np.zeros(0), mask
    right = np.roll(ids, -1, axis=1)
    down = np.roll(ids, -1, axis=0)
    diag = np.roll(right, -1, axis=0)
    distinct = 1 + (right != ids) + ((down != ids) & (down != right))
    distinct += (diag != ids) & (diag != right) & (diag != down)
    # A 2×2 window with three cells straddles a triple junction; its centre is the shared pixel corner.
    junctions = (np.argwhere(distinct >= 3)[:, ::-1] + 1.0) * pixel
    boundaries = (np.argwhere(distinct == 2)[:, ::-1] + 1.0) * pixel
    mean_d = config.pore_size_rel * grain_nm
    mean_area = np.pi / 4.0 * mean_d**2 * np.exp(config.pore_log_sigma**2)
    shares = np.array([config.pore_junction_share, config.pore_boundary_share, 0.0])
    shares[2] = max(0.0, 1.0 - shares.sum())
    centres: list[np.ndarray] = []
    radii: list[np.ndarray] = []
    covered = 0.0
    for _ in range(60):
        # Boolean-model estimate of the discs still needed, damped so the union does not overshoot.
        need = -np.log((1.0 - porosity) / (1.0 - covered)) * extent**2 / mean_area
        batch = max(1, int(0.7 * need))
        site = rng.choice(3, size=batch, p=shares / shares.sum())
        c = rng.uniform(0.0, extent, (batch, 2))  # intragranular, or where no such sites exist
        for kind, points in ((0, junctions), (1, boundaries)):
            pick = site == kind
            if pick.any() and len(points):
                c[pick] = points[rng.integers(0, len(points), pick.sum())]
        c = (c + rng.normal(0.0, config.pore_jitter_rel * grain_nm, c.shape)) % extent
        r = 0.5 * _lognormal(rng, mean_d, config.pore_log_sigma, batch)
        paint_discs(mask, c / pixel, r / pixel, periodic=True)
        centres.append(c)
        radii.append(r)
        covered = float(mask.mean())
        if covered >= porosity - 0.25 * mean_area / extent**2 or need < 1.0:
            break
    return np.concatenate(centres), np.concatenate(radii), mask


def _boundary_length_per_area(ids: np.ndarray, pores: np.ndarray, pixel: float, area: float) -> float:
    """Grain-boundary length per unit area (pore surfaces excluded), Cauchy–Crofton corrected."""
    solid = ~pores
    crossings = 0
    for axis in (0, 1):
        other = np.roll(ids, -1, axis=axis)
        crossings += int(np.sum((other != ids) & solid & np.roll(solid, -1, axis=axis)))
    # Counting row and column crossings measures ∫(|cos| + |sin|) dl, whose mean over directions is 4/π.
    return crossings * pixel * np.pi / 4.0 / area


def _oxide_pockets(
    config: MicrostructureConfig,
    ids: np.ndarray,
    pores: np.ndarray,
    seeds: np.ndarray,
    weights: np.ndarray,
    pixel: float,
    extent: float,
    excess_area: float,
) -> tuple[np.ndarray, np.ndarray]:
    """BaO discs (centres, radii in nm) of total area `excess_area`, one on every triple junction not in a pore.

    Junctions are found on the periodic coarse grid `ids` (a 2×2 window holding three cells), one per
    triple of cells, and placed exactly at the power-diagram vertex of that triple. Sizes are lognormal
    (σ `particle_log_sigma`) scaled to the excess; overlaps and pores may hide a little of it. The draws
    come from a generator seeded by the geometry, never from the specimen's `rng`.
    """
    none = (np.zeros((0, 2)), np.zeros(0))
    if excess_area <= 0.0:
        return none
    right = np.roll(ids, -1, axis=1)
    down = np.roll(ids, -1, axis=0)
    diag = np.roll(right, -1, axis=0)
    window = np.sort(np.stack([ids, right, down, diag], axis=-1), axis=-1)
    v0, v1, v2, v3 = np.moveaxis(window, -1, 0)
    triple = (v0 != v3) & ((v1 != v0) & (v1 != v3) | (v2 != v0) & (v2 != v3)) & ~pores
    rows, cols = np.nonzero(triple)
    if rows.size == 0:
        return none
    a, c = v0[rows, cols], v3[rows, cols]
    b = np.where(v1[rows, cols] != a, v1[rows, cols], v2[rows, cols])
    _, first = np.unique(np.stack([a, b, c], axis=1), axis=0, return_index=True)
    first = np.sort(first)
    rows, cols, a, b, c = rows[first], cols[first], a[first], b[first], c[first]
    corner = (np.stack([cols, rows], axis=1) + 1.0) * pixel  # the window's shared pixel corner (x, y)
    # The vertex equidistant (in power) from the three seeds, each taken at its image nearest the corner.
    near = [corner + (seeds[k] - corner) - extent * np.round((seeds[k] - corner) / extent) for k in (a, b, c)]
    rhs = [np.sum(s**2, axis=1) - weights[k] for s, k in zip(near, (a, b, c), strict=True)]
    m = np.stack([2.0 * (near[1] - near[0]), 2.0 * (near[2] - near[0])], axis=1)  # (n, 2, 2)
    r = np.stack([rhs[1] - rhs[0], rhs[2] - rhs[0]], axis=1)
    det = m[:, 0, 0] * m[:, 1, 1] - m[:, 0, 1] * m[:, 1, 0]
    ok = np.abs(det) > 1e-12 * np.max(np.abs(m), axis=(1, 2)) ** 2
    vertex = corner.copy()
    if ok.any():
        vertex[ok] = np.linalg.solve(m[ok], r[ok][:, :, None])[:, :, 0]
    # A near-degenerate junction (or a quadruple one) keeps the grid corner.
    vertex = np.where(np.linalg.norm(vertex - corner, axis=1, keepdims=True) <= 2.0 * pixel, vertex, corner)
    digest = hashlib.sha256(b"gb-oxide-pockets" + np.ascontiguousarray(seeds).tobytes()).digest()
    pocket_rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    areas = np.exp(pocket_rng.normal(0.0, config.particle_log_sigma, len(vertex)))
    areas *= excess_area / areas.sum()
    return vertex % extent, np.sqrt(areas / np.pi)


def _disc_images(
    centres: np.ndarray, radii: np.ndarray, extent: float, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The periodic copies of the discs (pores, oxide pockets) that touch the window [lo, hi) (x, y in nm)."""
    reach = float(radii.max(initial=0.0))
    out_c, out_r = [np.zeros((0, 2))], [np.zeros(0)]
    for sx in np.arange(np.floor((lo[0] - reach) / extent) - 1, np.ceil((hi[0] + reach) / extent) + 1):
        for sy in np.arange(np.floor((lo[1] - reach) / extent) - 1, np.ceil((hi[1] + reach) / extent) + 1):
            c = centres + extent * np.array([sx, sy])
            inside = np.all((c + radii[:, None] > lo) & (c - radii[:, None] < hi), axis=1)
            out_c.append(c[inside])
            out_r.append(radii[inside])
    return np.concatenate(out_c), np.concatenate(out_r)
