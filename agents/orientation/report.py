"""`OrientationReport`: grains and grain-boundary statistics of one orientation map (units in the field names).

Built by `orientation_report(crystal_map, ...)` from an orix `CrystalMap` (grains reconstructed unless given,
see `agents.orientation.grains`). Conventions:

- area fractions are of the whole map (not-indexed points included, as `not_indexed`);
- grain sizes are equivalent-circle diameters (nm) of grains that do not touch the map edge; the count
  includes edge grains;
- boundary statistics are weighted by boundary length; the misorientation histogram, the low-angle
  fraction (misorientation < θc) and the Σ3 fraction use same-phase boundaries only; interphase boundaries
  appear as their own length fraction. Boundaries below the grain threshold are merged into grains and never
  counted, so the low-angle fraction only sees the band [threshold, θc);
- texture strength is the peak IPF-z density in MRD (`agents.orientation.texture`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from orix.crystal_map import CrystalMap
from pydantic import BaseModel, ConfigDict, Field

from agents.orientation.grains import (
    DEFAULT_MIN_GRAIN_PX,
    DEFAULT_THRESHOLD_DEG,
    NOT_INDEXED,
    Grains,
    low_angle_fraction,
    map_arrays,
    misorientation_histogram,
    reconstruct_grains,
    sigma3_fraction,
)
from agents.orientation.texture import ipf_z_max_mrd
from agents.segmentation.report import diameter_histogram

DEFAULT_CRITICAL_DEG = 9.0
DEFAULT_BIN_WIDTH_DEG = 2.5
CORRELATION_PROPS = ("correlation", "dp", "ci", "scores")  # template match, EMsoft dot product, TSL CI
RELIABILITY_PROPS = ("reliability",)
_ROUND = 6


class Timings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    load_s: float = Field(0.0, ge=0.0, description="reading the map file (0 when given a CrystalMap)")
    indexing_s: float = Field(0.0, ge=0.0, description="indexing the patterns (0 for an existing map)")
    grains_s: float = Field(ge=0.0)
    statistics_s: float = Field(ge=0.0)
    total_s: float = Field(ge=0.0)


class PhaseStatistics(BaseModel):
    """Numbers of one phase; boundary numbers are of the boundaries inside this phase."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    phase_id: int
    point_group: str
    cubic: bool
    area_fraction: float = Field(ge=0.0, le=1.0)
    grain_count: int = Field(ge=0)
    median_grain_size_nm: float | None = None
    boundary_length_per_area_um_inv: float = Field(ge=0.0)
    low_angle_fraction: float | None = Field(None, ge=0.0, le=1.0)
    sigma3_fraction: float | None = Field(None, ge=0.0, le=1.0, description="cubic phases only")
    texture_max_mrd: float | None = Field(None, ge=0.0)


class OrientationReport(BaseModel):
    """Grains and grain-boundary statistics of one orientation map (see the module docstring)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    source: str | None = Field(None, description="file the map came from, if any")
    scan_shape: tuple[int, int] = Field(description="(rows, columns)")
    step_nm: float = Field(gt=0.0, description="x step; `step_y_nm` differs only on rectangular grids")
    step_y_nm: float = Field(gt=0.0)
    indexed_fraction: float = Field(ge=0.0, le=1.0)
    phase_fractions: dict[str, float] = Field(description="area fractions of the map, `not_indexed` included")
    phases: dict[str, PhaseStatistics]
    mean_correlation: float | None = Field(None, description="mean match score of indexed points, if recorded")
    correlation_property: str | None = Field(None, description="which map property `mean_correlation` is")
    mean_reliability: float | None = None
    patterns_per_s: float | None = Field(None, description="indexing throughput, when the map was indexed here")
    threshold_deg: float = Field(gt=0.0, description="grain reconstruction: neighbours below this join")
    min_grain_px: int = Field(ge=1)
    grain_count: int = Field(ge=0, description="all grains, edge grains included")
    interior_grain_count: int = Field(ge=0, description="grains not touching the edge: the size statistics")
    mean_grain_size_nm: float | None = None
    median_grain_size_nm: float | None = None
    grain_size_p10_nm: float | None = None
    grain_size_p90_nm: float | None = None
    equivalent_diameters_nm: list[float] = Field(default_factory=list)
    diameter_histogram_edges_nm: list[float] = Field(default_factory=list, description="log-spaced bin edges")
    diameter_histogram_counts: list[int] = Field(default_factory=list)
    boundary_length_per_area_um_inv: float = Field(ge=0.0, description="all grain and phase boundaries")
    interphase_boundary_fraction: float | None = Field(None, ge=0.0, le=1.0, description="of boundary length")
    critical_deg: float = Field(gt=0.0, description="θc of the low-angle fraction")
    misorientation_bin_edges_deg: list[float]
    misorientation_length_fractions: list[float] = Field(description="same-phase boundaries, sums to 1")
    low_angle_fraction: float | None = Field(None, ge=0.0, le=1.0, description="same-phase length below θc")
    sigma3_fraction: float | None = Field(None, ge=0.0, le=1.0, description="of cubic same-phase boundaries")
    texture_max_mrd: float | None = Field(None, description="peak IPF-z density of `texture_phase`")
    texture_phase: str | None = Field(None, description="the largest phase by area")
    timings: Timings
    warnings: list[str] = Field(default_factory=list)

    def event_data(self) -> dict[str, Any]:
        """Flat event fields: scalars, `fraction_<phase>`, per-phase Σ3/texture, histograms as short arrays.

        Unmeasurable values (None) are left out; the per-grain diameter list stays in the report only.
        """
        data: dict[str, Any] = {
            "scan_rows": self.scan_shape[0],
            "scan_cols": self.scan_shape[1],
            "step_nm": self.step_nm,
            "indexed_fraction": self.indexed_fraction,
            "mean_correlation": self.mean_correlation,
            "mean_reliability": self.mean_reliability,
            "patterns_per_s": self.patterns_per_s,
            "threshold_deg": self.threshold_deg,
            "grain_count": self.grain_count,
            "interior_grain_count": self.interior_grain_count,
            "mean_grain_size_nm": self.mean_grain_size_nm,
            "median_grain_size_nm": self.median_grain_size_nm,
            "grain_size_p10_nm": self.grain_size_p10_nm,
            "grain_size_p90_nm": self.grain_size_p90_nm,
            "diameter_histogram_edges_nm": self.diameter_histogram_edges_nm,
            "diameter_histogram_counts": self.diameter_histogram_counts,
            "boundary_length_per_area_um_inv": self.boundary_length_per_area_um_inv,
            "interphase_boundary_fraction": self.interphase_boundary_fraction,
            "critical_deg": self.critical_deg,
            "misorientation_bin_edges_deg": self.misorientation_bin_edges_deg,
            "misorientation_length_fractions": self.misorientation_length_fractions,
            "low_angle_fraction": self.low_angle_fraction,
            "sigma3_fraction": self.sigma3_fraction,
            "texture_max_mrd": self.texture_max_mrd,
            "indexing_s": self.timings.indexing_s or None,
            "grains_s": self.timings.grains_s,
            "statistics_s": self.timings.statistics_s,
            "n_warnings": len(self.warnings),
        }
        data.update({f"fraction_{_key(name)}": value for name, value in self.phase_fractions.items()})
        for name, phase in self.phases.items():
            data[f"grain_count_{_key(name)}"] = phase.grain_count
            data[f"sigma3_fraction_{_key(name)}"] = phase.sigma3_fraction
            data[f"texture_max_mrd_{_key(name)}"] = phase.texture_max_mrd
        return {k: v for k, v in data.items() if v is not None}

    @property
    def summary(self) -> str:
        """One line for logs and the dashboard."""
        phases = ", ".join(f"{name} {f:.0%}" for name, f in self.phase_fractions.items() if f > 0)
        size = "—" if self.median_grain_size_nm is None else f"{self.median_grain_size_nm / 1e3:.3g} µm"
        low = "—" if self.low_angle_fraction is None else f"{self.low_angle_fraction:.1%}"
        text = (
            f"{self.scan_shape[0]}×{self.scan_shape[1]} map ({phases}); {self.grain_count} grains, "
            f"median ECD {size}; boundaries below θc = {self.critical_deg:g}°: {low}"
        )
        return text + (f"; Σ3 {self.sigma3_fraction:.1%}" if self.sigma3_fraction is not None else "")


def orientation_report(
    crystal_map: CrystalMap,
    grains: Grains | None = None,
    *,
    threshold_deg: float = DEFAULT_THRESHOLD_DEG,
    min_grain_px: int = DEFAULT_MIN_GRAIN_PX,
    critical_deg: float = DEFAULT_CRITICAL_DEG,
    bin_width_deg: float = DEFAULT_BIN_WIDTH_DEG,
    source: str | None = None,
    load_s: float = 0.0,
    grains_s: float = 0.0,
) -> OrientationReport:
    """The report of `crystal_map`; grains are reconstructed with `threshold_deg`/`min_grain_px` unless given.

    `load_s` and `grains_s` (the time spent on given grains) only enter the report's timings.
    """
    import time

    t0 = time.perf_counter()
    if grains is None:
        grains = reconstruct_grains(map_arrays(crystal_map), threshold_deg, min_grain_px)
    t1 = time.perf_counter()
    grains_s = grains_s + (t1 - t0)
    arrays = grains.arrays
    n_points = arrays.phase_id.size
    area_um2 = n_points * arrays.step_x_nm * arrays.step_y_nm / 1e6
    b = grains.boundaries
    fractions: dict[str, float] = {}
    phases: dict[str, PhaseStatistics] = {}
    for pid, info in arrays.phases.items():
        in_phase = arrays.phase_id == pid
        fractions[info.name] = float(in_phase.sum()) / n_points
        is_phase_grain = grains.grain_phase_id == pid
        interior = is_phase_grain & ~grains.touches_edge
        sizes = np.sqrt(4.0 * grains.area_px[interior] * arrays.step_x_nm * arrays.step_y_nm / np.pi)
        inside = b.same_phase & (b.phase_a == pid)
        phases[info.name] = PhaseStatistics(
            phase_id=pid,
            point_group=info.point_group,
            cubic=info.cubic,
            area_fraction=fractions[info.name],
            grain_count=int(is_phase_grain.sum()),
            median_grain_size_nm=float(np.median(sizes)) if sizes.size else None,
            boundary_length_per_area_um_inv=float(b.length_nm[inside].sum()) / 1e3 / area_um2,
            low_angle_fraction=low_angle_fraction(grains, critical_deg, pid),
            sigma3_fraction=sigma3_fraction(grains, pid) if info.cubic else None,
            texture_max_mrd=ipf_z_max_mrd(arrays.quaternions[in_phase], info.symmetry),
        )
    not_indexed = float((arrays.phase_id == NOT_INDEXED).sum()) / n_points
    fractions["not_indexed"] = not_indexed
    d = np.sort(grains.equivalent_diameters_nm(interior_only=True))
    d_edges, d_counts = diameter_histogram(d)
    edges, length_fractions = misorientation_histogram(grains, bin_width_deg)
    total_nm = float(b.length_nm.sum())
    correlation_name, mean_correlation = _property_mean(crystal_map, CORRELATION_PROPS)
    _, mean_reliability = _property_mean(crystal_map, RELIABILITY_PROPS)
    largest = max(phases, key=lambda name: phases[name].area_fraction) if phases else None
    warnings = _warnings(grains, critical_deg, d.size)
    t2 = time.perf_counter()
    return OrientationReport(
        source=source,
        scan_shape=arrays.shape,
        step_nm=_r(arrays.step_x_nm),
        step_y_nm=_r(arrays.step_y_nm),
        indexed_fraction=1.0 - not_indexed,
        phase_fractions=fractions,
        phases=phases,
        mean_correlation=mean_correlation,
        correlation_property=correlation_name,
        mean_reliability=mean_reliability,
        threshold_deg=grains.threshold_deg,
        min_grain_px=grains.min_grain_px,
        grain_count=grains.n_grains,
        interior_grain_count=int(d.size),
        mean_grain_size_nm=_r(d.mean()) if d.size else None,
        median_grain_size_nm=_r(np.median(d)) if d.size else None,
        grain_size_p10_nm=_r(np.percentile(d, 10)) if d.size else None,
        grain_size_p90_nm=_r(np.percentile(d, 90)) if d.size else None,
        equivalent_diameters_nm=[round(float(x), 3) for x in d],
        diameter_histogram_edges_nm=d_edges,
        diameter_histogram_counts=d_counts,
        boundary_length_per_area_um_inv=total_nm / 1e3 / area_um2,
        interphase_boundary_fraction=float(b.length_nm[~b.same_phase].sum()) / total_nm if total_nm > 0 else None,
        critical_deg=critical_deg,
        misorientation_bin_edges_deg=[_r(e) for e in edges],
        misorientation_length_fractions=[_r(f) for f in length_fractions],
        low_angle_fraction=low_angle_fraction(grains, critical_deg),
        sigma3_fraction=sigma3_fraction(grains),
        texture_max_mrd=phases[largest].texture_max_mrd if largest else None,
        texture_phase=largest,
        timings=Timings(load_s=load_s, grains_s=grains_s, statistics_s=t2 - t1, total_s=load_s + grains_s + t2 - t1),
        warnings=warnings,
    )


def _property_mean(crystal_map: CrystalMap, names: tuple[str, ...]) -> tuple[str | None, float | None]:
    """The first of `names` recorded in the map, and its mean over indexed points (first match per point)."""
    indexed = np.asarray(crystal_map.is_indexed)
    for name in names:
        if name in crystal_map.prop and indexed.any():
            values = np.asarray(crystal_map.prop[name], dtype=float)
            values = values.reshape(len(indexed), -1)[:, 0][indexed]
            values = values[np.isfinite(values)]
            if values.size:
                return name, _r(values.mean())
    return None, None


def _warnings(grains: Grains, critical_deg: float, n_interior: int) -> list[str]:
    out = []
    if grains.threshold_deg >= critical_deg:
        out.append(
            f"grain threshold {grains.threshold_deg:g}° ≥ θc {critical_deg:g}°: boundaries below θc are merged "
            "into grains, so the low-angle fraction is 0 by construction"
        )
    if grains.n_grains > 0 and n_interior == 0:
        out.append("no grain lies wholly inside the map: grain sizes are not measurable")
    if not grains.arrays.phases:
        out.append("no indexed point")
    return out


def _key(name: str) -> str:
    """A phase name as an event-field suffix ("austenite/austenite" → "austenite_austenite")."""
    return "".join(ch if ch.isalnum() else "_" for ch in name).strip("_").lower() or "phase"


def _r(value: float) -> float:
    return round(float(value), _ROUND)
