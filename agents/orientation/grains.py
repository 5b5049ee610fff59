"""Grains and grain boundaries of a 2D orientation map (an orix `CrystalMap` on a square grid).

Grain reconstruction: two 4-connected neighbouring points belong to the same grain when both are indexed,
of the same phase, and their disorientation (misorientation reduced by the phase's proper point group) is
below `threshold_deg` (default 5°); grains are the connected components of that graph (union–find via
`scipy.sparse.csgraph`, shared with the segmentation agent). Grains smaller than `min_grain_px` points are
dropped: their points, like not-indexed ones, belong to no grain (id 0) and border no boundary.

Boundary segments: every pixel edge between two different grains is one segment, of estimated length
step · π/4 (the Cauchy–Crofton correction of a staircase, as in `agents.segmentation.grains`), carrying the
disorientation angle between the two points on either side (not the grains' mean orientations): the
reduction uses the phase's point group for same-phase boundaries and both point groups for interphase
ones. A same-phase segment of a cubic phase is Σ3 when within Brandon's 15°/√3 = 8.66° of 60°⟨111⟩.

Lengths are in nm (orix's `scan_unit` converted: "um" → ×1000); points are (row, column) = (y, x).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from orix.crystal_map import CrystalMap
from orix.quaternion.symmetry import C1, Symmetry

from agents.orientation.ang_io import MapError
from agents.orientation.misorientation import disorientation_angle_deg, is_sigma3, misorientation
from agents.segmentation.classical import _union_find
from agents.segmentation.grains import _compact

DEFAULT_THRESHOLD_DEG = 5.0
DEFAULT_MIN_GRAIN_PX = 4
NOT_INDEXED = -1
CROFTON = np.pi / 4.0
SCAN_UNIT_NM = {"nm": 1.0, "um": 1e3, "µm": 1e3, "μm": 1e3, "mm": 1e6}


@dataclass(frozen=True)
class PhaseInfo:
    """One phase of a map: its name, point group and the (K, 4) quaternions of its proper point group."""

    phase_id: int
    name: str
    point_group: str
    cubic: bool
    symmetry: np.ndarray
    point_group_symmetry: Symmetry


@dataclass(frozen=True)
class MapArrays:
    """A crystal map as full-grid arrays: `phase_id` (H, W), −1 = not indexed; `quaternions` (H, W, 4)."""

    phase_id: np.ndarray
    quaternions: np.ndarray
    step_x_nm: float
    step_y_nm: float
    phases: dict[int, PhaseInfo]

    @property
    def shape(self) -> tuple[int, int]:
        return self.phase_id.shape  # type: ignore[return-value]


@dataclass(frozen=True)
class BoundarySegments:
    """One entry per pixel edge between two different grains."""

    grain_a: np.ndarray  # (M,) grain ids on either side
    grain_b: np.ndarray
    phase_a: np.ndarray  # (M,) phase ids on either side
    phase_b: np.ndarray
    length_nm: np.ndarray  # (M,) step · π/4
    angle_deg: np.ndarray  # (M,) symmetry-reduced misorientation across the edge
    sigma3: np.ndarray  # (M,) bool; False unless same cubic phase and Σ3 within Brandon
    point_a: np.ndarray  # (M,) flat indices (row · columns + column) of the two points; b is right of or below a
    point_b: np.ndarray

    @property
    def same_phase(self) -> np.ndarray:
        return self.phase_a == self.phase_b


@dataclass(frozen=True)
class Grains:
    """Reconstructed grains: `grain_id` (H, W) int32, 0 = no grain, 1..n a grain; per-grain arrays (n + 1,)."""

    grain_id: np.ndarray
    grain_phase_id: np.ndarray  # −1 at index 0
    area_px: np.ndarray
    touches_edge: np.ndarray
    boundaries: BoundarySegments
    arrays: MapArrays
    threshold_deg: float
    min_grain_px: int

    @property
    def n_grains(self) -> int:
        return len(self.area_px) - 1

    def equivalent_diameters_nm(self, interior_only: bool = True) -> np.ndarray:
        """Equivalent-circle diameters √(4A/π) of the grains (those not touching the frame edge by default)."""
        keep = np.ones(self.n_grains + 1, dtype=bool) if not interior_only else ~self.touches_edge
        keep[0] = False
        area_nm2 = self.area_px[keep] * self.arrays.step_x_nm * self.arrays.step_y_nm
        return np.sqrt(4.0 * area_nm2 / np.pi)


def map_arrays(xmap: CrystalMap) -> MapArrays:
    """Full-grid phase ids and first-match quaternions of `xmap`; points outside its data count as not indexed."""
    if len(xmap.shape) != 2:
        raise MapError(f"grain reconstruction needs a 2D map, got shape {xmap.shape}")
    unit_nm = SCAN_UNIT_NM.get(str(xmap.scan_unit).strip())
    if unit_nm is None:
        raise MapError(f"unknown scan unit {xmap.scan_unit!r}: expected one of {sorted(SCAN_UNIT_NM)}")
    rows, cols = xmap.shape
    step_x, step_y = (float(xmap.dx) if cols > 1 else 0.0), (float(xmap.dy) if rows > 1 else 0.0)
    step_x, step_y = step_x or step_y, step_y or step_x
    if not step_x > 0:
        raise MapError("the map has no step size (a single point?)")
    phase_id = np.full((rows, cols), NOT_INDEXED, dtype=np.int64)
    quaternions = np.zeros((rows, cols, 4))
    quaternions[..., 0] = 1.0
    r, c = np.asarray(xmap.row), np.asarray(xmap.col)
    if not (_regular(xmap.x, step_x) and _regular(xmap.y, step_y)):
        raise MapError("the map's points are not on a regular square grid (hexagonal grids are not supported)")
    phase_id[r, c] = np.asarray(xmap.phase_id)
    q = np.asarray(xmap.rotations.data, dtype=float)
    quaternions[r, c] = q.reshape(len(r), -1, 4)[:, 0]  # several matches per point: the best (first) one
    phases: dict[int, PhaseInfo] = {}
    for pid, phase in xmap.phases_in_data:
        if pid == NOT_INDEXED:
            continue
        pg = phase.point_group
        proper = pg.proper_subgroup if pg is not None else C1
        phases[int(pid)] = PhaseInfo(
            phase_id=int(pid),
            name=str(phase.name),
            point_group=pg.name if pg is not None else "1",
            cubic=pg is not None and pg.system == "cubic",
            symmetry=np.asarray(proper.data, dtype=float).reshape(-1, 4),
            point_group_symmetry=pg if pg is not None else C1,
        )
    return MapArrays(phase_id, quaternions, step_x * unit_nm, step_y * unit_nm, phases)


def reconstruct_grains(
    xmap: CrystalMap | MapArrays,
    threshold_deg: float = DEFAULT_THRESHOLD_DEG,
    min_grain_px: int = DEFAULT_MIN_GRAIN_PX,
) -> Grains:
    """Grains and boundary segments of `xmap` (see the module docstring)."""
    if not 0.0 < threshold_deg < 180.0:
        raise MapError(f"the grain threshold must lie in (0°, 180°), got {threshold_deg}°")
    if min_grain_px < 1:
        raise MapError(f"the minimum grain size must be at least 1 point, got {min_grain_px}")
    arrays = xmap if isinstance(xmap, MapArrays) else map_arrays(xmap)
    rows, cols = arrays.shape
    phase = arrays.phase_id.ravel()
    quats = arrays.quaternions.reshape(-1, 4)
    pa, pb, edge_nm = _neighbour_pairs(rows, cols, arrays.step_x_nm, arrays.step_y_nm)
    same = (phase[pa] != NOT_INDEXED) & (phase[pa] == phase[pb])
    angle = np.full(len(pa), np.nan)
    for pid, info in arrays.phases.items():
        sel = same & (phase[pa] == pid)
        angle[sel] = disorientation_angle_deg(misorientation(quats[pa[sel]], quats[pb[sel]]), info.symmetry)

    join = same & (angle < threshold_deg)
    root = _union_find(rows * cols, pa[join], pb[join])
    labels = np.where(phase != NOT_INDEXED, root + 1, 0)
    labels = _compact(labels)
    area = np.bincount(labels, minlength=int(labels.max()) + 1)
    keep = area >= min_grain_px
    keep[0] = False
    grain_flat = _compact(np.where(keep[labels], labels, 0)).astype(np.int32)
    grain_id = grain_flat.reshape(rows, cols)
    n = int(grain_flat.max())
    area_px = np.bincount(grain_flat, minlength=n + 1)
    area_px[0] = 0
    grain_phase_id = np.full(n + 1, NOT_INDEXED, dtype=np.int64)
    grain_phase_id[grain_flat] = phase  # every point of a grain has the grain's phase
    grain_phase_id[0] = NOT_INDEXED
    touches_edge = np.zeros(n + 1, dtype=bool)
    touches_edge[np.concatenate([grain_id[0], grain_id[-1], grain_id[:, 0], grain_id[:, -1]])] = True
    touches_edge[0] = False

    ga, gb = grain_flat[pa], grain_flat[pb]
    on_boundary = (ga > 0) & (gb > 0) & (ga != gb)
    boundaries = _boundary_segments(
        arrays,
        pa[on_boundary],
        pb[on_boundary],
        ga[on_boundary],
        gb[on_boundary],
        edge_nm[on_boundary],
        angle[on_boundary],
    )
    return Grains(grain_id, grain_phase_id, area_px, touches_edge, boundaries, arrays, threshold_deg, min_grain_px)


def _neighbour_pairs(rows: int, cols: int, step_x_nm: float, step_y_nm: float) -> tuple[np.ndarray, ...]:
    """Flat indices of 4-connected neighbour pairs and the length of the pixel edge they share (× π/4)."""
    index = np.arange(rows * cols).reshape(rows, cols)
    right_a, right_b = index[:, :-1].ravel(), index[:, 1:].ravel()  # side by side: a vertical edge, step_y long
    down_a, down_b = index[:-1].ravel(), index[1:].ravel()  # one above the other: a horizontal edge, step_x long
    pa = np.concatenate([right_a, down_a])
    pb = np.concatenate([right_b, down_b])
    edge_nm = np.concatenate([np.full(len(right_a), step_y_nm), np.full(len(down_a), step_x_nm)]) * CROFTON
    return pa, pb, edge_nm


def _boundary_segments(
    arrays: MapArrays,
    pa: np.ndarray,
    pb: np.ndarray,
    grain_a: np.ndarray,
    grain_b: np.ndarray,
    length_nm: np.ndarray,
    angle_deg: np.ndarray,
) -> BoundarySegments:
    """Angles of interphase segments (both point groups) filled in, Σ3 flags for same-phase cubic ones."""
    phase = arrays.phase_id.ravel()
    quats = arrays.quaternions.reshape(-1, 4)
    phase_a, phase_b = phase[pa], phase[pb]
    angle = angle_deg.copy()
    sigma3 = np.zeros(len(pa), dtype=bool)
    for pid_a, info_a in arrays.phases.items():
        for pid_b, info_b in arrays.phases.items():
            sel = (phase_a == pid_a) & (phase_b == pid_b)
            if not sel.any():
                continue
            m = misorientation(quats[pa[sel]], quats[pb[sel]])
            if pid_a == pid_b:
                if info_a.cubic:
                    sigma3[sel] = is_sigma3(m, info_a.symmetry)
            else:
                angle[sel] = disorientation_angle_deg(m, info_a.symmetry, info_b.symmetry)
    return BoundarySegments(grain_a, grain_b, phase_a, phase_b, length_nm, angle, sigma3, pa, pb)


def _regular(coordinate: np.ndarray, step: float) -> bool:
    """Whether coordinates are whole multiples of the step from their minimum (a square grid)."""
    values = np.asarray(coordinate, dtype=float)
    if values.size == 0 or step <= 0:
        return True
    offsets = (values - values.min()) / step
    return bool(np.allclose(offsets, np.round(offsets), atol=1e-3))


def misorientation_histogram(
    grains: Grains, bin_width_deg: float = 2.5, phase_id: int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Bin edges (degrees, from 0) and boundary-length fractions of the same-phase boundary segments.

    Only boundaries inside one phase (of `phase_id`, or of any phase) count; interphase boundaries have no
    common crystal frame and are left out. The fractions sum to 1 (all zeros when there is no boundary).
    """
    b = grains.boundaries
    sel = b.same_phase if phase_id is None else b.same_phase & (b.phase_a == phase_id)
    top = max(float(b.angle_deg[sel].max()) if sel.any() else 0.0, 60.0)
    edges = np.arange(0.0, np.ceil(top / bin_width_deg + 1e-9) * bin_width_deg + bin_width_deg / 2, bin_width_deg)
    length, _ = np.histogram(b.angle_deg[sel], bins=edges, weights=b.length_nm[sel])
    total = float(length.sum())
    return edges, (length / total if total > 0 else length)


def low_angle_fraction(grains: Grains, critical_deg: float, phase_id: int | None = None) -> float | None:
    """Length fraction of same-phase boundaries whose misorientation is below `critical_deg` (None if none)."""
    b = grains.boundaries
    sel = b.same_phase if phase_id is None else b.same_phase & (b.phase_a == phase_id)
    total = float(b.length_nm[sel].sum())
    return float(b.length_nm[sel & (b.angle_deg < critical_deg)].sum()) / total if total > 0 else None


def sigma3_fraction(grains: Grains, phase_id: int | None = None) -> float | None:
    """Length fraction of Σ3 boundaries among the same-phase boundaries of the cubic phases (or of one phase).

    None when there is no cubic phase (or `phase_id` is not cubic) or no such boundary.
    """
    b = grains.boundaries
    cubic_ids = [pid for pid, info in grains.arrays.phases.items() if info.cubic]
    if phase_id is not None:
        cubic_ids = [pid for pid in cubic_ids if pid == phase_id]
    sel = b.same_phase & np.isin(b.phase_a, cubic_ids)
    total = float(b.length_nm[sel].sum())
    return float(b.length_nm[sel & b.sigma3].sum()) / total if total > 0 else None
