"""Grains from a class map, and the microstructure statistics of a segmented image.

A grain is a region of a solid class (matrix, secondary phase, contamination) enclosed by the
grain-boundary class or by pores. The steps, all vectorised (≈ 0.2 s at 1024² on one core):

1. 4-connected components of the solid, non-boundary pixels ("cores"). The simulator's boundary band is
   4-closed, so on a perfect map every component is one grain.
2. A segmented boundary may have gaps that merge two grains through a neck. A component is split by a
   watershed on its distance transform d (distance to the nearest boundary or pore pixel) from markers
   {d > t}, with t = max(`MIN_NECK_HALF_WIDTH_PX`, `NECK_FRACTION` · max d of the component): a neck
   narrower than 2t parts the grain; a convex grain has a convex {d > t} and is never cut.
3. Fragments smaller than `MIN_GRAIN_AREA_PX` are dropped, then every grain grows into the boundary
   pixels up to `BOUNDARY_GROWTH_PX` away (nearest grain wins), so boundary pixels count as grain area,
   as in the simulator's truth (`Section.equivalent_diameters_nm`).
4. A grain's class is the majority class of its core pixels.

Statistics:

- equivalent diameter d = √(4A/π) of each matrix grain that does not touch the frame edge (a grain
  cut by the edge would bias the sizes low; large grains touch the edge more often, so the retained
  distribution is slightly biased low when grains are a sizeable share of the frame — the same rule is
  applied to the truth, so comparisons are fair);
- class area fractions over the whole frame; porosity is the pore fraction;
- boundary length per area, by Cauchy–Crofton on the grain map: the number of horizontal and vertical
  neighbour pairs that belong to two different grains, × pixel × π/4, over the frame area. Pore surfaces
  do not count. The simulator measures its truth the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

MIN_NECK_HALF_WIDTH_PX = 1.0
NECK_FRACTION = 0.0
MIN_GRAIN_AREA_PX = 6
MIN_AREA_REL = 0.2
BOUNDARY_GROWTH_PX = 3.0
FOUR_CONNECTED = ndi.generate_binary_structure(2, 1)

SOLID_CLASSES = ("matrix", "secondary_phase", "contamination")
BOUNDARY_CLASS = "grain_boundary"
PORE_CLASS = "pore"
MATRIX_CLASS = "matrix"


@dataclass(frozen=True)
class GrainMap:
    """Grains of one class map: `grains` (H, W) int32, 0 = no grain, 1..n a grain."""

    grains: np.ndarray
    grain_class: np.ndarray  # (n + 1,) class id of each grain (index 0 unused)
    area_px: np.ndarray  # (n + 1,) pixels of each grain, boundary pixels it grew into included
    touches_edge: np.ndarray  # (n + 1,) bool

    @property
    def n_grains(self) -> int:
        return len(self.area_px) - 1


@dataclass(frozen=True)
class MicrostructureStats:
    """Numbers from one class map; lengths in nm, densities in µm⁻¹."""

    class_fractions: dict[str, float]
    porosity: float
    grain_count: int  # grains of the matrix class, edge grains included
    interior_grain_count: int  # those that do not touch the frame edge: the size statistics use these
    equivalent_diameters_nm: np.ndarray  # interior matrix grains
    boundary_length_per_area_um_inv: float | None  # None when the classes have no grain boundary


def find_grains(class_map: np.ndarray, classes: tuple[str, ...]) -> GrainMap:
    """Grains of a (H, W) class-id map whose class names are `classes` (see the module docstring)."""
    class_map = np.asarray(class_map)
    solid_ids = [classes.index(c) for c in SOLID_CLASSES if c in classes]
    core = np.isin(class_map, solid_ids)
    components, n_components = ndi.label(core, structure=FOUR_CONNECTED)
    cores = _split_necks(core, components, n_components)
    cores = _drop_small(cores, MIN_GRAIN_AREA_PX)
    solid = core | (class_map == classes.index(BOUNDARY_CLASS)) if BOUNDARY_CLASS in classes else core
    grains = _grow_into(cores, solid, BOUNDARY_GROWTH_PX)
    n = int(grains.max())
    counts = np.bincount(
        (cores.ravel().astype(np.int64) * len(classes) + class_map.ravel()), minlength=(n + 1) * len(classes)
    ).reshape(n + 1, len(classes))
    grain_class = counts.argmax(axis=1).astype(np.uint8)
    area_px = np.bincount(grains.ravel(), minlength=n + 1)
    touches_edge = np.zeros(n + 1, dtype=bool)
    touches_edge[np.concatenate([grains[0], grains[-1], grains[:, 0], grains[:, -1]])] = True
    touches_edge[0] = False
    return GrainMap(grains, grain_class, area_px, touches_edge)


def grain_map_from_ids(grain_id: np.ndarray, label: np.ndarray, classes: tuple[str, ...]) -> GrainMap:
    """A `GrainMap` from true grain ids (−1 = none) and the true label map, for reference statistics."""
    ids = np.asarray(grain_id)
    _, inverse = np.unique(ids, return_inverse=True)
    grains = inverse.reshape(ids.shape).astype(np.int32) + (0 if (ids < 0).any() else 1)
    n = int(grains.max())
    solid_ids = [classes.index(c) for c in SOLID_CLASSES if c in classes]
    core = np.isin(label, solid_ids)
    counts = np.bincount(
        (np.where(core, grains, 0).ravel().astype(np.int64) * len(classes) + label.ravel()),
        minlength=(n + 1) * len(classes),
    ).reshape(n + 1, len(classes))
    grain_class = counts.argmax(axis=1).astype(np.uint8)
    grain_class[counts.sum(axis=1) == 0] = classes.index(BOUNDARY_CLASS) if BOUNDARY_CLASS in classes else 0
    area_px = np.bincount(grains.ravel(), minlength=n + 1)
    area_px[0] = 0
    touches_edge = np.zeros(n + 1, dtype=bool)
    touches_edge[np.concatenate([grains[0], grains[-1], grains[:, 0], grains[:, -1]])] = True
    touches_edge[0] = False
    return GrainMap(grains, grain_class, area_px, touches_edge)


def grain_statistics(
    class_map: np.ndarray, classes: tuple[str, ...], pixel_nm: float, grain_map: GrainMap | None = None
) -> MicrostructureStats:
    """Class fractions, porosity, grain sizes and boundary density of a class map (grains found unless given)."""
    class_map = np.asarray(class_map)
    fractions = np.bincount(class_map.ravel(), minlength=len(classes))[: len(classes)] / class_map.size
    class_fractions = {name: float(f) for name, f in zip(classes, fractions, strict=True)}
    porosity = class_fractions.get(PORE_CLASS, 0.0)
    if BOUNDARY_CLASS not in classes or MATRIX_CLASS not in classes:
        return MicrostructureStats(class_fractions, porosity, 0, 0, np.zeros(0), None)
    grain_map = grain_map or find_grains(class_map, classes)
    matrix = grain_map.grain_class == classes.index(MATRIX_CLASS)
    matrix[0] = False
    interior = matrix & ~grain_map.touches_edge
    diameters_nm = np.sqrt(4.0 * grain_map.area_px[interior] / np.pi) * pixel_nm
    return MicrostructureStats(
        class_fractions=class_fractions,
        porosity=porosity,
        grain_count=int(matrix.sum()),
        interior_grain_count=int(interior.sum()),
        equivalent_diameters_nm=diameters_nm,
        boundary_length_per_area_um_inv=boundary_length_per_area_um_inv(grain_map.grains, pixel_nm),
    )


def boundary_length_per_area_um_inv(grains: np.ndarray, pixel_nm: float) -> float:
    """Length of the interfaces between two grains per frame area (µm/µm²), Cauchy–Crofton corrected.

    Counting row and column crossings measures ∫(|cos θ| + |sin θ|) dl, whose mean over directions is 4/π.
    """
    crossings = 0
    for a, b in ((grains[:, :-1], grains[:, 1:]), (grains[:-1], grains[1:])):
        crossings += int(np.count_nonzero((a != b) & (a > 0) & (b > 0)))
    length_nm = crossings * pixel_nm * np.pi / 4.0
    area_nm2 = grains.size * pixel_nm**2
    return float(length_nm / area_nm2 * 1e3)


def _split_necks(core: np.ndarray, components: np.ndarray, n_components: int) -> np.ndarray:
    """Components split at necks narrower than 2t (watershed on the distance transform), relabelled 1..n."""
    if n_components == 0:
        return components
    dist = ndi.distance_transform_edt(core)
    peak = np.zeros(n_components + 1)
    np.maximum.at(peak, components.ravel(), dist.ravel())
    threshold = np.maximum(MIN_NECK_HALF_WIDTH_PX, NECK_FRACTION * peak)
    threshold[0] = np.inf
    markers, n_markers = ndi.label(dist > threshold[components], structure=FOUR_CONNECTED)
    if n_markers == 0:
        return components
    # each marker lies inside one component; components holding more than one marker need the watershed
    component_of = np.zeros(n_markers + 1, dtype=np.int64)
    component_of[markers.ravel()] = components.ravel()
    split = np.bincount(component_of[1:], minlength=n_components + 1) > 1
    split[0] = False
    if not split.any():
        return components
    from skimage.segmentation import watershed

    region = split[components]
    rows, cols = np.nonzero(region)
    window = (slice(rows.min(), rows.max() + 1), slice(cols.min(), cols.max() + 1))
    sub_markers = np.where(region[window], markers[window], 0)
    parts = watershed(-dist[window], sub_markers, mask=region[window])
    out = np.where(region, 0, components).astype(np.int64)
    out[window] = np.where(region[window], parts + n_components, out[window])
    return _compact(out)


def _compact(labels: np.ndarray) -> np.ndarray:
    """Labels renumbered 1..n in order, 0 kept."""
    present = np.bincount(labels.ravel()) > 0
    present[0] = False
    new_id = (np.cumsum(present) * present).astype(np.int32)
    return new_id[labels]


def _drop_small(labels: np.ndarray, min_area_px: int) -> np.ndarray:
    """Labels smaller than `min_area_px` or `MIN_AREA_REL` × the median of the others removed, relabelled 1..n."""
    area = np.bincount(labels.ravel())
    big = area[1:][area[1:] >= min_area_px]
    floor = max(min_area_px, MIN_AREA_REL * float(np.median(big))) if len(big) else min_area_px
    keep = area >= floor
    keep[0] = False
    return _compact(np.where(keep[labels], labels, 0))


def _grow_into(labels: np.ndarray, allowed: np.ndarray, max_px: float) -> np.ndarray:
    """Labels grown into unlabelled `allowed` pixels within `max_px` (the nearest label wins)."""
    if not labels.any():
        return labels.astype(np.int32)
    dist, (ri, ci) = ndi.distance_transform_edt(labels == 0, return_indices=True)
    grown = labels[ri, ci]
    return np.where(allowed & (dist <= max_px), grown, 0).astype(np.int32)
