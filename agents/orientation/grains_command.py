"""`grainloop orient grains MAP`: grains and grain-boundary statistics of an existing orientation map.

`add_grains_parser(orient_subparsers)` adds the `grains` subcommand to the `orient` group; `--json` prints the
`OrientationReport` as exactly one JSON object, otherwise a table. Bad input (missing, corrupt or unsupported
map, bad thresholds) prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from agents.orientation.ang_io import MapError
from agents.orientation.grains import DEFAULT_MIN_GRAIN_PX, DEFAULT_THRESHOLD_DEG, Grains
from agents.orientation.report import DEFAULT_CRITICAL_DEG, OrientationReport

EXIT_BAD_INPUT = 2


def add_grains_parser(orient_subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add `grains` to the `orient` subcommands; returns its parser."""
    grains = orient_subparsers.add_parser(
        "grains", help="grains, boundary misorientations, Σ3 twins and texture of an orientation map (.ang, .h5)"
    )
    grains.add_argument("map", help="orientation map readable by orix (.ang, .ctf, orix/EMsoft .h5)")
    grains.add_argument("--json", action="store_true", help="print the report as one JSON object")
    grains.add_argument("--ipf", metavar="OUT.png", help="write the IPF-z map with grain boundaries here")
    grains.add_argument("--hist", metavar="OUT.png", help="write the misorientation histogram here")
    grains.add_argument(
        "--threshold-deg",
        type=float,
        default=DEFAULT_THRESHOLD_DEG,
        help=f"neighbours misoriented less than this join one grain (default {DEFAULT_THRESHOLD_DEG:g})",
    )
    grains.add_argument(
        "--critical-deg",
        type=float,
        default=DEFAULT_CRITICAL_DEG,
        help=f"θc: boundaries below it count as low-angle (default {DEFAULT_CRITICAL_DEG:g})",
    )
    grains.add_argument(
        "--min-grain-px",
        type=int,
        default=DEFAULT_MIN_GRAIN_PX,
        help=f"grains with fewer points are dropped (default {DEFAULT_MIN_GRAIN_PX})",
    )
    grains.set_defaults(func=run_grains)
    return grains


def run_grains(args: argparse.Namespace) -> int:
    """Load the map, reconstruct grains, print the report, write the figures asked for."""
    try:
        report = _analyse(args)
    except MapError as exc:
        print(f"grainloop: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.json:
        sys.stdout.write(json.dumps(report.model_dump(mode="json")) + "\n")
    else:
        print_report_table(report, [p for p in (args.ipf, args.hist) if p])
    return 0


def _analyse(args: argparse.Namespace) -> OrientationReport:
    from agents.orientation.ang_io import load_map
    from agents.orientation.grains import reconstruct_grains
    from agents.orientation.report import orientation_report

    if not args.critical_deg > 0:
        raise MapError(f"--critical-deg must be positive, got {args.critical_deg}")
    check_png_options(args)
    t0 = time.perf_counter()
    xmap = load_map(args.map)
    load_s = time.perf_counter() - t0
    grains = reconstruct_grains(xmap, args.threshold_deg, args.min_grain_px)
    grains_s = time.perf_counter() - t0 - load_s
    report = orientation_report(
        xmap, grains, critical_deg=args.critical_deg, source=str(args.map), load_s=load_s, grains_s=grains_s
    )
    write_figures(grains, args.ipf, args.hist, args.critical_deg)
    return report


def check_png_options(args: argparse.Namespace) -> None:
    """`--ipf` / `--hist` must name PNG files (checked before any work is done)."""
    for option, path in (("--ipf", args.ipf), ("--hist", getattr(args, "hist", None))):
        if path and not path.lower().endswith(".png"):
            raise MapError(f"{option} writes a PNG: give a .png path, got {path}")


def write_figures(grains: Grains, ipf: str | None, hist: str | None, critical_deg: float) -> None:
    """The IPF map and the misorientation histogram, for the paths given."""
    if not (ipf or hist):
        return
    from agents.orientation.plots import write_ipf_map, write_misorientation_histogram

    try:
        if ipf:
            write_ipf_map(ipf, grains, critical_deg)
        if hist:
            write_misorientation_histogram(hist, grains, critical_deg)
    except OSError as exc:
        raise MapError(f"cannot write the figure: {exc}") from exc


def print_report_table(report: OrientationReport, figures: list[str]) -> None:
    """The report as a rich table (and its warnings) on stdout."""
    from rich.console import Console
    from rich.table import Table

    def pct(value: float | None) -> str:
        return "—" if value is None else f"{value:.1%}"

    def length(nm: float | None) -> str:
        return "—" if nm is None else (f"{nm / 1e3:.3g} µm" if nm >= 1e3 else f"{nm:.3g} nm")

    table = Table(title=report.source or "orientation map", show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    rows, cols = report.scan_shape
    table.add_row("map", f"{rows}×{cols} points, step {length(report.step_nm)}; indexed {pct(report.indexed_fraction)}")
    if report.mean_correlation is not None:
        table.add_row(f"mean {report.correlation_property}", f"{report.mean_correlation:.3f}")
    for name, phase in report.phases.items():
        extra = f", Σ3 {pct(phase.sigma3_fraction)}" if phase.cubic else ""
        table.add_row(
            f"{name} ({phase.point_group})",
            f"{pct(phase.area_fraction)} of area, {phase.grain_count} grains, "
            f"median ECD {length(phase.median_grain_size_nm)}{extra}",
        )
    table.add_row(
        "grains", f"{report.grain_count} ({report.interior_grain_count} interior; threshold {report.threshold_deg:g}°)"
    )
    table.add_row("ECD median / mean", f"{length(report.median_grain_size_nm)} / {length(report.mean_grain_size_nm)}")
    table.add_row("boundary length per area", f"{report.boundary_length_per_area_um_inv:.4g} µm⁻¹")
    table.add_row("interphase boundaries", pct(report.interphase_boundary_fraction))
    table.add_row(f"same-phase boundaries below θc = {report.critical_deg:g}°", pct(report.low_angle_fraction))
    table.add_row("Σ3 (cubic phases)", pct(report.sigma3_fraction))
    if report.texture_max_mrd is not None:
        table.add_row(f"texture: peak IPF-z density, {report.texture_phase}", f"{report.texture_max_mrd:.2f} MRD")
    t = report.timings
    indexing = f"indexing {t.indexing_s:.2f} s, " if t.indexing_s else ""
    table.add_row(
        "time",
        f"{t.total_s:.2f} s ({indexing}load {t.load_s:.2f} s, grains {t.grains_s:.3f} s, "
        f"statistics {t.statistics_s:.2f} s)",
    )
    if report.patterns_per_s is not None:
        table.add_row("indexing speed", f"{report.patterns_per_s:.0f} patterns/s")
    for path in figures:
        table.add_row("figure", path)
    console = Console()
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]note:[/] {warning}")
