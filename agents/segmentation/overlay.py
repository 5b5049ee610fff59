"""Overlay PNG: the image in grey, classes in colour, grain outlines, and a grain-size histogram panel."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from agents.segmentation.image_input import normalise
from agents.segmentation.report import MicrostructureReport

CLASS_COLOURS = {
    "grain_boundary": (1.0, 0.85, 0.0),
    "pore": (0.1, 0.1, 0.9),
    "secondary_phase": (0.0, 0.75, 0.3),
    "contamination": (0.9, 0.1, 0.1),
    "secondary_gamma_prime": (0.0, 0.75, 0.3),
    "tertiary_gamma_prime": (0.9, 0.5, 0.0),
}
"""Matrix stays grey: colour marks what is not matrix."""
CLASS_ALPHA = 0.45
OUTLINE_COLOUR = (0.0, 1.0, 1.0)


def overlay_rgb(
    image: np.ndarray, class_map: np.ndarray, classes: tuple[str, ...], grains: np.ndarray | None = None
) -> np.ndarray:
    """(H, W, 3) float RGB in [0, 1]: first channel in grey, class colours blended in, grain outlines drawn."""
    grey = np.clip(normalise(image[:1])[0], 0.0, 1.0)
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    for class_id, name in enumerate(classes):
        colour = CLASS_COLOURS.get(name)
        mask = class_map == class_id
        if colour is not None and mask.any():
            rgb[mask] = (1.0 - CLASS_ALPHA) * rgb[mask] + CLASS_ALPHA * np.asarray(colour)
    if grains is not None:
        outline = np.zeros(grains.shape, dtype=bool)
        outline[:, 1:] |= grains[:, 1:] != grains[:, :-1]
        outline[1:] |= grains[1:] != grains[:-1]
        rgb[outline & (grains > 0)] = OUTLINE_COLOUR
    return rgb


def write_overlay(
    path: str | Path,
    image: np.ndarray,
    class_map: np.ndarray,
    classes: tuple[str, ...],
    report: MicrostructureReport,
    grains: np.ndarray | None = None,
) -> Path:
    """Write the overlay and the histogram of equivalent diameters side by side as a PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    path = Path(path)
    fig = Figure(figsize=(12, 6), dpi=100, layout="constrained")
    ax_image, ax_hist = fig.subplots(1, 2, width_ratios=(1.0, 0.8))
    h, w = class_map.shape
    extent_um = (0.0, w * report.pixel_nm / 1e3, h * report.pixel_nm / 1e3, 0.0)
    ax_image.imshow(overlay_rgb(image, class_map, classes, grains), extent=extent_um, interpolation="nearest")
    ax_image.set_xlabel("x (µm)")
    ax_image.set_ylabel("y (µm)")
    ax_image.set_title(f"{report.model}: {report.grain_count} grains, porosity {report.porosity:.1%}")
    handles = [Patch(color=CLASS_COLOURS[n], label=n) for n in classes if n in CLASS_COLOURS]
    if grains is not None:
        handles.append(Patch(color=OUTLINE_COLOUR, label="grain outline"))
    ax_image.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.8)
    if report.diameter_histogram_counts:
        edges = np.asarray(report.diameter_histogram_edges_nm)
        ax_hist.stairs(report.diameter_histogram_counts, edges, fill=True, alpha=0.7)
        ax_hist.set_xscale("log")
        if report.median_grain_size_nm is not None:
            ax_hist.axvline(
                report.median_grain_size_nm, color="k", ls="--", label=f"median {report.median_grain_size_nm:.0f} nm"
            )
            ax_hist.legend()
    else:
        ax_hist.text(0.5, 0.5, "no interior grain", ha="center", va="center", transform=ax_hist.transAxes)
    ax_hist.set_xlabel("equivalent diameter (nm)")
    ax_hist.set_ylabel("grains (not touching the edge)")
    ax_hist.set_title(f"{report.interior_grain_count} interior grains")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path
