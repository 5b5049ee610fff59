"""PNG figures of an orientation map: the IPF-z map with grain boundaries, and the misorientation histogram.

IPF map: each indexed point coloured by orix's `IPFColorKeyTSL` of its phase's point group along the sample
z direction (the beam in SPED), not-indexed points black; grain boundaries drawn on the pixel edges — black
at or above θc, white below θc, red for Σ3 twins (cubic phases), dashed black for interphase boundaries;
one colour-key triangle per Laue group beside the map; a scale bar. Histogram: boundary-length fractions
of same-phase boundaries per misorientation bin, stacked by phase, θc as a dashed line. Agg backend, no
display needed.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.collections import LineCollection

from agents.orientation.grains import NOT_INDEXED, Grains, misorientation_histogram
from agents.orientation.report import DEFAULT_BIN_WIDTH_DEG, DEFAULT_CRITICAL_DEG

SIGMA3_COLOUR = "#e8000b"  # red, the usual colour of twin boundaries in EBSD maps
NICE_LENGTHS_UM = (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)


def ipf_rgb(grains: Grains) -> np.ndarray:
    """(H, W, 3) IPF-z colours in [0, 1]; not-indexed points black."""
    from orix.plot import IPFColorKeyTSL
    from orix.quaternion import Orientation
    from orix.vector import Vector3d

    arrays = grains.arrays
    rgb = np.zeros((*arrays.shape, 3))
    for pid, info in arrays.phases.items():
        mask = arrays.phase_id == pid
        key = IPFColorKeyTSL(info.point_group_symmetry, direction=Vector3d.zvector())
        orientations = Orientation(arrays.quaternions[mask], symmetry=info.point_group_symmetry)
        rgb[mask] = key.orientation2color(orientations)
    rgb[arrays.phase_id == NOT_INDEXED] = 0.0
    return np.clip(rgb, 0.0, 1.0)


def write_ipf_map(
    path: str | Path, grains: Grains, critical_deg: float = DEFAULT_CRITICAL_DEG, title: str | None = None
) -> Path:
    """Write the IPF-z map of `grains` with boundaries, colour key(s) and scale bar to `path` (PNG)."""

    arrays = grains.arrays
    rows, cols = arrays.shape
    width_um, height_um = cols * arrays.step_x_nm / 1e3, rows * arrays.step_y_nm / 1e3
    map_w_in = 6.0
    map_h_in = min(max(map_w_in * height_um / width_um, 1.5), 7.0)
    fig_w_in, fig_h_in = map_w_in + 1.9, map_h_in + 0.8
    fig = plt.figure(figsize=(fig_w_in, fig_h_in), dpi=100)
    ax = fig.add_axes((0.1 / fig_w_in, 0.4 / fig_h_in, map_w_in / fig_w_in, map_h_in / fig_h_in))
    ax.imshow(ipf_rgb(grains), extent=(0, width_um, height_um, 0), interpolation="nearest")
    for kind, lines in _boundary_lines(grains, critical_deg).items():
        if len(lines):
            colour, style = _BOUNDARY_STYLE[kind]
            ax.add_collection(LineCollection(lines, colors=colour, linestyles=style, linewidths=BOUNDARY_WIDTH))
    _scale_bar(ax, width_um, height_um)
    ax.set_axis_off()
    ax.set_title(title or f"IPF-z, {grains.n_grains} grains (threshold {grains.threshold_deg:g}°)", fontsize=9)
    handles = [
        plt.Line2D([], [], color=_BOUNDARY_STYLE[kind][0], linestyle=_BOUNDARY_STYLE[kind][1], label=label)
        for kind, label in _LEGEND.items()
        if kind != "below" or critical_deg > grains.threshold_deg
    ]
    fig.legend(handles=handles, loc="lower left", ncol=4, fontsize=7, facecolor="0.8", bbox_to_anchor=(0.01, 0.0))

    laue_groups: dict[str, list[str]] = {}
    for info in arrays.phases.values():
        laue_groups.setdefault(info.point_group_symmetry.laue.name, []).append(info.name)
    left = (map_w_in + 0.2) / fig_w_in
    size = 1.6 / fig_w_in
    for i, (laue_name, names) in enumerate(laue_groups.items()):
        symmetry = next(
            info.point_group_symmetry.laue
            for info in arrays.phases.values()
            if info.point_group_symmetry.laue.name == laue_name
        )
        bottom = 0.55 - i * (size + 0.2)
        key_ax = fig.add_axes((left, bottom, size, size))
        _colour_key(key_ax, symmetry)
        key_ax.set_title("\n".join([f"IPF-z key, {laue_name}", *names]), fontsize=7)
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def write_misorientation_histogram(
    path: str | Path,
    grains: Grains,
    critical_deg: float = DEFAULT_CRITICAL_DEG,
    bin_width_deg: float = DEFAULT_BIN_WIDTH_DEG,
) -> Path:
    """Write the length-weighted misorientation histogram of same-phase boundaries, stacked by phase (PNG)."""
    b = grains.boundaries
    edges, _ = misorientation_histogram(grains, bin_width_deg)
    same = b.same_phase
    total_nm = float(b.length_nm[same].sum())
    fig, ax = plt.subplots(figsize=(6.0, 3.6), dpi=100)
    bottom = np.zeros(len(edges) - 1)
    for pid, info in grains.arrays.phases.items():
        sel = same & (b.phase_a == pid)
        length, _ = np.histogram(b.angle_deg[sel], bins=edges, weights=b.length_nm[sel])
        fraction = length / total_nm if total_nm > 0 else length
        ax.bar(edges[:-1], fraction, width=np.diff(edges), bottom=bottom, align="edge", label=info.name)
        bottom += fraction
    ax.axvline(critical_deg, color="k", linestyle="--", linewidth=1)
    below = float(b.length_nm[same & (b.angle_deg < critical_deg)].sum()) / total_nm if total_nm > 0 else 0.0
    ax.text(critical_deg, ax.get_ylim()[1] * 0.95, f" θc = {critical_deg:g}°: {below:.1%} below", va="top", fontsize=8)
    ax.set_xlim(0, edges[-1])
    ax.set_xlabel("misorientation (°), symmetry-reduced")
    ax.set_ylabel("boundary-length fraction")
    ax.set_title(f"Grain boundaries within a phase (threshold {grains.threshold_deg:g}°)", fontsize=9)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


_BOUNDARY_STYLE = {  # colour, line style
    "high": ("k", "solid"),
    "below": ("w", "solid"),
    "sigma3": (SIGMA3_COLOUR, "solid"),
    "interphase": ("k", (0, (2, 1))),
}
BOUNDARY_WIDTH = 1.0
_LEGEND = {"high": "≥ θc", "below": "< θc", "sigma3": "Σ3", "interphase": "interphase"}


def _boundary_lines(grains: Grains, critical_deg: float) -> dict[str, np.ndarray]:
    """Pixel-edge segments (µm) of each boundary kind, as (K, 2, 2) arrays for LineCollection."""
    arrays = grains.arrays
    b = grains.boundaries
    cols = arrays.shape[1]
    dx, dy = arrays.step_x_nm / 1e3, arrays.step_y_nm / 1e3
    ra, ca = np.divmod(b.point_a, cols)
    rb, cb = np.divmod(b.point_b, cols)
    side_by_side = ra == rb  # the shared edge is vertical, at the left of b
    x0 = np.where(side_by_side, cb * dx, ca * dx)
    y0 = np.where(side_by_side, ra * dy, rb * dy)
    x1 = np.where(side_by_side, cb * dx, (ca + 1) * dx)
    y1 = np.where(side_by_side, (ra + 1) * dy, rb * dy)
    lines = np.stack([np.stack([x0, y0], -1), np.stack([x1, y1], -1)], axis=1)
    same = b.same_phase
    kinds = {
        "interphase": ~same,
        "sigma3": same & b.sigma3,
        "below": same & ~b.sigma3 & (b.angle_deg < critical_deg),
        "high": same & ~b.sigma3 & (b.angle_deg >= critical_deg),
    }
    return {kind: lines[mask] for kind, mask in kinds.items()}


def _colour_key(ax: plt.Axes, laue: object, pixels: int = 160) -> None:
    """The IPF colour key of a Laue group: its fundamental sector in the stereographic projection.

    Drawn here from `DirectionColorKeyTSL.direction2color` on a pixel grid, because orix's own
    `plot_ipf_color_key` interpolates with `scipy.interpolate.griddata` and took ~11 s for 4/mmm.
    """
    from orix.plot.direction_color_keys import DirectionColorKeyTSL
    from orix.projections import StereographicProjection
    from orix.vector import Vector3d

    sector = laue.fundamental_sector  # type: ignore[attr-defined]
    vertices = sector.vertices if sector.vertices.size else Vector3d([[0, 0, 1]])
    corners = Vector3d(np.vstack([vertices.data, sector.edges.data]))
    x_c, y_c = StereographicProjection().vector2xy(corners)
    x = np.linspace(min(x_c.min(), 0.0), max(x_c.max(), 1e-3), pixels)
    y = np.linspace(min(y_c.min(), 0.0), max(y_c.max(), 1e-3), pixels)
    xx, yy = np.meshgrid(x, y)
    r2 = xx**2 + yy**2
    v = Vector3d(np.stack([2 * xx, 2 * yy, 1 - r2], -1).reshape(-1, 3) / (1 + r2).reshape(-1, 1))
    inside = np.asarray(v <= sector).reshape(xx.shape) & (r2 <= 1.0)
    rgba = np.zeros((*xx.shape, 4))
    rgba[inside, :3] = DirectionColorKeyTSL(laue).direction2color(v[inside.ravel()])
    rgba[inside, 3] = 1.0
    ax.imshow(rgba, origin="lower", extent=(x[0], x[-1], y[0], y[-1]), interpolation="bilinear")
    for vertex, (vx, vy) in zip(
        vertices, zip(*StereographicProjection().vector2xy(vertices), strict=True), strict=True
    ):
        uvw = vertex.data[0] / np.abs(vertex.data[0][np.abs(vertex.data[0]) > 1e-6]).min()
        label = "[" + "".join(f"{round(c):d}" for c in uvw) + "]"
        ax.annotate(label, (vx, vy), fontsize=6, ha="center", va="top" if vy <= y.mean() else "bottom")
    ax.set_aspect("equal")
    ax.set_axis_off()


def _scale_bar(ax: plt.Axes, width_um: float, height_um: float) -> None:
    """A white bar with a black outline, about a fifth of the map wide, in the lower-left corner."""
    target = width_um / 5.0
    length = max((n for n in NICE_LENGTHS_UM if n <= target), default=NICE_LENGTHS_UM[0])
    x0, y0 = width_um * 0.04, height_um * 0.94
    ax.plot([x0, x0 + length], [y0, y0], color="k", linewidth=5, solid_capstyle="butt")
    ax.plot([x0, x0 + length], [y0, y0], color="w", linewidth=3, solid_capstyle="butt")
    label = f"{length:g} µm" if length >= 1 else f"{length * 1e3:g} nm"
    ax.text(
        x0 + length / 2,
        y0 - height_um * 0.025,
        label,
        color="w",
        ha="center",
        va="bottom",
        fontsize=8,
        fontweight="bold",
        path_effects=_outline(),
    )


def _outline() -> list:
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=2, foreground="k")]
