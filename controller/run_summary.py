"""A one-page picture of a sample's runs, drawn from its run directory (documents + HDF5 files).

Mill vial temperature, the furnace's control thermocouple against its setpoint in programme time,
the HAADF survey image, a SPED virtual image and mean pattern, and the measured properties.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

Docs = list[tuple[str, dict[str, Any]]]


def load_runs(files: list[Path]) -> dict[str, Docs]:
    """The documents of each stage's run, from run files (the latest run of a stage wins)."""
    runs: dict[str, tuple[float, Docs]] = {}
    for path in files:
        with Path(path).open() as fh:  # one document per "\n"-terminated line
            docs: Docs = [tuple(json.loads(line)) for line in fh if line.strip()]  # type: ignore[misc]
        start = docs[0][1]
        if start.get("time", 0) >= runs.get(start["stage"], (0.0, []))[0]:
            runs[start["stage"]] = (start["time"], docs)
    return {stage: docs for stage, (_, docs) in runs.items()}


def monitor_series(docs: Docs, key: str) -> tuple[np.ndarray, np.ndarray]:
    """(wall time, value) of a monitored signal."""
    streams = {d["uid"] for n, d in docs if n == "descriptor" and key in d["data_keys"]}
    points = [(d["time"], d["data"][key]) for n, d in docs if n == "event" and d["descriptor"] in streams]
    points = [(t, v) for t, v in points if v is not None]
    arr = np.array(points, dtype=float).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def in_programme_time(docs: Docs, key: str, elapsed_key: str) -> tuple[np.ndarray, np.ndarray]:
    """A monitored value against the instrument's own elapsed time (simulated or real), in hours."""
    t, v = monitor_series(docs, key)
    te, elapsed = monitor_series(docs, elapsed_key)
    if len(te) < 2:
        return (t - t[0]) / 3600.0 if len(t) else t, v
    return np.interp(t, te, elapsed) / 3600.0, v


def external_array(docs: Docs, key: str) -> np.ndarray | None:
    """Load the array an event references through datum → resource → HDF5."""
    events = [d for n, d in docs if n == "event" and key in d["data"]]
    if not events:
        return None
    datums = {d["datum_id"]: d for n, d in docs if n == "datum"}
    resources = {d["uid"]: d for n, d in docs if n == "resource"}
    resource = resources[datums[events[-1]["data"][key]]["resource"]]
    with h5py.File(Path(resource["root"]) / resource["resource_path"], "r") as fh:
        return fh[resource["resource_kwargs"]["dataset"]][()]


def plot_summary(files: list[Path], out: Path | str) -> Path:
    """Draw the summary PNG of one sample's run files to `out`; returns its path."""
    runs = load_runs(files)
    fig, axes = plt.subplots(2, 3, figsize=(15, 9))
    (ax_mill, ax_furnace, ax_text), (ax_haadf, ax_vbf, ax_pattern) = axes
    if "mill" in runs:
        h, vial = in_programme_time(runs["mill"], "mill_vial_temperature_c", "mill_elapsed_s")
        ax_mill.plot(h * 60, vial, color="tab:red")
        ax_mill.set(title="mill: vial temperature", xlabel="milling time / min", ylabel="°C")
    if "sinter" in runs:
        docs = runs["sinter"]
        h, reading = in_programme_time(docs, "furnace_temperature_c", "furnace_elapsed_s")
        hs, setpoint = in_programme_time(docs, "furnace_setpoint_c", "furnace_elapsed_s")
        ax_furnace.plot(hs, setpoint, "--", color="grey", label="setpoint")
        ax_furnace.plot(h, reading, color="tab:orange", label="control thermocouple")
        ax_furnace.set(title=f"furnace ({docs[0][1].get('route', '?')})", xlabel="programme time / h", ylabel="°C")
        ax_furnace.legend()
    survey = runs.get("survey_image")
    haadf = external_array(survey, "stem_survey_haadf") if survey else None
    if haadf is not None:
        ax_haadf.imshow(haadf, cmap="gray")
        ax_haadf.set_title("HAADF survey")
    sped = runs.get("sped_scan")
    patterns = external_array(sped, "stem_sped_patterns") if sped else None
    if patterns is not None:
        ax_vbf.imshow(patterns.sum(axis=(2, 3), dtype=np.float64), cmap="gray")
        ax_vbf.set_title("SPED: virtual image (total counts)")
        ax_pattern.imshow(np.log1p(patterns.mean(axis=(0, 1))), cmap="inferno")
        ax_pattern.set_title("SPED: mean pattern (log)")
    _properties_text(ax_text, runs.get("measure_properties"))
    for ax in (ax_haadf, ax_vbf, ax_pattern, ax_text):
        if not ax.images and ax is not ax_text:
            ax.text(0.5, 0.5, "not acquired", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
    start = next(iter(runs.values()))[0][1] if runs else {}
    sample = start.get("sample_id", "?")
    fig.suptitle(f"{sample} — campaign {start.get('campaign_id', '?')}, step {start.get('step', '?')}")
    fig.tight_layout()
    out_path = Path(out)
    fig.savefig(out_path, dpi=80)
    plt.close(fig)
    return out_path


def _properties_text(ax: plt.Axes, docs: Docs | None) -> None:
    ax.set_title("measured properties")
    events = [d for n, d in docs if n == "event"] if docs else []
    if not events:
        ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
        return
    data = events[-1]["data"]
    lines = [
        f"trapped field (5 K)  {data['properties_trapped_field_t']:.3f} T",
        f"Jc (4.2 K, s.f.)     {data['properties_jc_a_per_cm2']:.3g} A/cm²",
        f"Tc                   {data['properties_tc_k']:.1f} K",
        f"relative density     {data['properties_relative_density']:.3f}",
        "",
        "phases (XRD, wt%):",
    ]
    lines += [
        f"  {k.removeprefix('properties_phase_').removesuffix('_wt_pct'):<10} {v:.1f}"
        for k, v in data.items()
        if k.startswith("properties_phase_") and v > 0
    ]
    ax.text(0.05, 0.95, "\n".join(lines), va="top", family="monospace", transform=ax.transAxes)
