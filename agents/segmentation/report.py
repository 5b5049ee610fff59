"""`MicrostructureReport`: what the segmentation agent says about one image (units in the field names)."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from agents.segmentation.grains import MicrostructureStats

HISTOGRAM_BINS = 16


class Timings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    segmentation_s: float = Field(ge=0.0)
    statistics_s: float = Field(ge=0.0)
    total_s: float = Field(ge=0.0, description="loading, segmentation and statistics")


class MicrostructureReport(BaseModel):
    """Microstructure numbers of one segmented image.

    Grain sizes are area-equivalent diameters of matrix grains that do not touch the frame edge (see
    `agents.segmentation.grains`); fractions are of the whole frame; `None` means "not measurable here"
    (no interior grain, or a model without a grain-boundary class).
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str
    source: str | None = Field(None, description="file the image came from, if any")
    image_shape_px: tuple[int, int]
    channels: int = Field(ge=1)
    pixel_nm: float = Field(gt=0.0)
    pixel_nm_source: Literal["argument", "file", "documents", "default"]
    class_fractions: dict[str, float]
    porosity: float = Field(ge=0.0, le=1.0)
    secondary_phase_fraction: float | None = Field(None, ge=0.0, le=1.0)
    grain_count: int = Field(ge=0, description="matrix grains, edge grains included")
    interior_grain_count: int = Field(ge=0, description="matrix grains not touching the edge: the size statistics")
    mean_grain_size_nm: float | None = None
    median_grain_size_nm: float | None = None
    grain_size_p10_nm: float | None = None
    grain_size_p90_nm: float | None = None
    equivalent_diameters_nm: list[float] = Field(default_factory=list)
    diameter_histogram_edges_nm: list[float] = Field(default_factory=list, description="log-spaced bin edges")
    diameter_histogram_counts: list[int] = Field(default_factory=list)
    boundary_length_per_area_um_inv: float | None = Field(None, ge=0.0)
    timings: Timings
    warnings: list[str] = Field(default_factory=list)

    @classmethod
    def from_stats(
        cls,
        stats: MicrostructureStats,
        *,
        model: str,
        image_shape_px: tuple[int, int],
        channels: int,
        pixel_nm: float,
        pixel_nm_source: str,
        timings: Timings,
        source: str | None = None,
        warnings: list[str] | None = None,
    ) -> MicrostructureReport:
        d = np.sort(stats.equivalent_diameters_nm)
        warnings = list(warnings or [])
        if stats.boundary_length_per_area_um_inv is not None and d.size == 0:
            warnings.append("no matrix grain lies wholly inside the frame: grain sizes are not measurable")
        edges, counts = diameter_histogram(d)
        return cls(
            model=model,
            source=source,
            image_shape_px=image_shape_px,
            channels=channels,
            pixel_nm=pixel_nm,
            pixel_nm_source=pixel_nm_source,  # type: ignore[arg-type]
            class_fractions=stats.class_fractions,
            porosity=stats.porosity,
            secondary_phase_fraction=stats.class_fractions.get("secondary_phase"),
            grain_count=stats.grain_count,
            interior_grain_count=stats.interior_grain_count,
            mean_grain_size_nm=float(d.mean()) if d.size else None,
            median_grain_size_nm=float(np.median(d)) if d.size else None,
            grain_size_p10_nm=float(np.percentile(d, 10)) if d.size else None,
            grain_size_p90_nm=float(np.percentile(d, 90)) if d.size else None,
            equivalent_diameters_nm=[round(float(x), 3) for x in d],
            diameter_histogram_edges_nm=edges,
            diameter_histogram_counts=counts,
            boundary_length_per_area_um_inv=stats.boundary_length_per_area_um_inv,
            timings=timings,
            warnings=warnings,
        )

    def event_data(self) -> dict[str, Any]:
        """Flat event fields: scalars, `fraction_<class>` per class, the histogram as two short arrays.

        Unmeasurable values (None) are left out; the per-grain diameter list stays in the report only.
        """
        data: dict[str, Any] = {
            "model": self.model,
            "pixel_nm": self.pixel_nm,
            "porosity": self.porosity,
            "secondary_phase_fraction": self.secondary_phase_fraction,
            "grain_count": self.grain_count,
            "interior_grain_count": self.interior_grain_count,
            "mean_grain_size_nm": self.mean_grain_size_nm,
            "median_grain_size_nm": self.median_grain_size_nm,
            "grain_size_p10_nm": self.grain_size_p10_nm,
            "grain_size_p90_nm": self.grain_size_p90_nm,
            "boundary_length_per_area_um_inv": self.boundary_length_per_area_um_inv,
            "diameter_histogram_edges_nm": self.diameter_histogram_edges_nm,
            "diameter_histogram_counts": self.diameter_histogram_counts,
            "segmentation_s": self.timings.segmentation_s,
            "statistics_s": self.timings.statistics_s,
            "n_warnings": len(self.warnings),
        }
        data.update({f"fraction_{name}": value for name, value in self.class_fractions.items()})
        return {k: v for k, v in data.items() if v is not None}


def diameter_histogram(diameters_nm: np.ndarray, bins: int = HISTOGRAM_BINS) -> tuple[list[float], list[int]]:
    """Log-spaced bin edges over the diameters' range (grain sizes are close to lognormal) and counts."""
    d = np.asarray(diameters_nm, dtype=float)
    if d.size == 0:
        return [], []
    lo, hi = float(d.min()), float(d.max())
    hi = hi if hi > lo else lo * 1.01 + 1e-9
    edges = np.geomspace(lo, hi, bins + 1)
    counts, _ = np.histogram(d, edges)
    return [round(float(e), 3) for e in edges], [int(c) for c in counts]
