"""A campaign's report: best-so-far against experiment, and the recipes it explored."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from controller.campaign.journal import StepRow
from controller.campaign.results import OBJECTIVE
from controller.recipe import LOG_AXES, ROUTE_SPACE, recipe_bounds

ROUTE_COLOURS = {"tube": "tab:blue", "hip": "tab:orange", "sps": "tab:green"}


def plot_campaign(rows: list[StepRow], out: Path, *, min_tc_k: float | None, optimum_t: float | None = None) -> Path:
    """Two panels: objective per experiment with the running best; explored recipes in parallel coordinates."""
    fig, (ax_best, ax_par) = plt.subplots(1, 2, figsize=(15, 5.5), gridspec_kw={"width_ratios": [1, 1.6]})
    finished = [r for r in rows if r.status in ("done", "failed")]
    xs, ys, best, best_curve, colours = [], [], -math.inf, [], []
    for i, row in enumerate(finished, start=1):
        value = (row.result or {}).get(OBJECTIVE) if row.status == "done" else None
        ok = value is not None and (min_tc_k is None or (row.result or {}).get("tc_k", 0.0) >= min_tc_k)
        if ok:
            best = max(best, value)
        xs.append(i)
        ys.append(value if value is not None else np.nan)
        colours.append(ROUTE_COLOURS.get(row.recipe["route"], "grey"))
        best_curve.append(best if best > -math.inf else np.nan)
    ax_best.scatter(xs, ys, c=colours, s=25, label="measured (colour = route)")
    failed = [x for x, r in zip(xs, finished, strict=True) if r.status == "failed"]
    ax_best.scatter(failed, [0.0] * len(failed), marker="x", color="red", label="failed")
    ax_best.step(xs, best_curve, where="post", color="black", label="best so far")
    if optimum_t is not None:
        ax_best.axhline(optimum_t, ls="--", color="grey", label=f"world optimum {optimum_t:.2f} T")
        ax_best.axhline(0.9 * optimum_t, ls=":", color="grey", label="90 % of optimum")
    ax_best.set(xlabel="experiment", ylabel="trapped field at 5 K / T", title="best so far")
    ax_best.legend(fontsize=8)
    _parallel_coordinates(ax_par, finished)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def _parallel_coordinates(ax: plt.Axes, rows: list[StepRow]) -> None:
    bounds = {**recipe_bounds(), "pressure_mpa": (0.0, 200.0), "ramp_rate_c_per_min": (1.0, 100.0)}
    axes = [*bounds, "route"]
    values = [(r.result or {}).get(OBJECTIVE) for r in rows]
    finite = [v for v in values if v is not None]
    vmax = max(finite) if finite else 1.0
    cmap = plt.get_cmap("viridis")
    routes = list(ROUTE_SPACE)
    for row, value in zip(rows, values, strict=True):
        ys = []
        for name in axes:
            if name == "route":
                ys.append(routes.index(row.recipe["route"]) / (len(routes) - 1))
                continue
            low, high = bounds[name]
            v = float(row.recipe[name])
            if name in LOG_AXES:
                low, high, v = math.log(low), math.log(high), math.log(v)
            ys.append((v - low) / (high - low) if high > low else 0.5)
        colour = cmap(value / vmax) if value is not None else (1.0, 0.0, 0.0, 0.6)
        ax.plot(range(len(axes)), ys, color=colour, alpha=0.7, lw=1.2)
    ax.set_xticks(range(len(axes)), [a.replace("_", "\n") for a in axes], fontsize=7)
    ax.set_yticks([0, 1], ["low", "high"])
    ax.set_title("explored recipes (colour = trapped field, red = failed; log axes for times)")
    sm = plt.cm.ScalarMappable(cmap=cmap, norm=plt.Normalize(0, vmax))
    plt.colorbar(sm, ax=ax, label="T")
