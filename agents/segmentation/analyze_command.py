"""`grainloop seg analyze IMAGE`: segment one image and print its microstructure statistics."""

from __future__ import annotations

import argparse
import json
import sys

from agents.segmentation.agent import SegmentationAgent
from agents.segmentation.report import MicrostructureReport
from agents.segmentation.sim_data import DEFAULT_PIXEL_NM

EXIT_BAD_INPUT = 2


def run_analyze(args: argparse.Namespace) -> int:
    """Pixel size: `--pixel-nm`, else the survey file's `pixel_nm`, else 2 nm (noted in the warnings)."""
    from agents.segmentation.models import ModelError, load_segmenter

    try:
        segmenter = load_segmenter(args.model)
    except ModelError as exc:
        print(f"grainloop: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    agent = SegmentationAgent(segmenter, pixel_nm=DEFAULT_PIXEL_NM)
    pixel_nm = getattr(args, "pixel_nm", None)
    if pixel_nm is not None and not pixel_nm > 0:
        print(f"grainloop: error: --pixel-nm must be positive, got {pixel_nm}", file=sys.stderr)
        return EXIT_BAD_INPUT
    analysis = agent.analyze_full(args.image, pixel_nm, pixel_nm_source="argument" if pixel_nm else "")
    report = analysis.report
    if getattr(args, "overlay", None):
        from agents.segmentation.overlay import write_overlay

        grains = analysis.grain_map.grains if analysis.grain_map is not None else None
        write_overlay(args.overlay, analysis.image, analysis.class_map, segmenter.classes, report, grains)
    if args.json:
        print(json.dumps(report.model_dump(mode="json")))
    else:
        _print_table(report, getattr(args, "overlay", None))
    return 0


def _print_table(report: MicrostructureReport, overlay: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    def fmt(value: float | None, spec: str, unit: str = "") -> str:
        return "—" if value is None else f"{value:{spec}}{unit}"

    table = Table(title=f"{report.source or 'image'} · {report.model}", show_header=False)
    table.add_column("quantity")
    table.add_column("value", justify="right")
    h, w = report.image_shape_px
    table.add_row("image", f"{h}×{w} px × {report.channels} ch, {report.pixel_nm:g} nm/px ({report.pixel_nm_source})")
    for name, fraction in report.class_fractions.items():
        table.add_row(f"area fraction: {name}", f"{fraction:.2%}")
    table.add_row("porosity", f"{report.porosity:.2%}")
    table.add_row("grains (matrix; interior)", f"{report.grain_count}; {report.interior_grain_count}")
    table.add_row("mean grain size", fmt(report.mean_grain_size_nm, ".1f", " nm"))
    table.add_row("median grain size", fmt(report.median_grain_size_nm, ".1f", " nm"))
    p10, p90 = report.grain_size_p10_nm, report.grain_size_p90_nm
    table.add_row("grain size p10–p90", "—" if p10 is None else f"{p10:.1f}–{p90:.1f} nm")
    table.add_row("boundary length per area", fmt(report.boundary_length_per_area_um_inv, ".2f", " µm⁻¹"))
    t = report.timings
    table.add_row(
        "time", f"{t.total_s:.2f} s (segmentation {t.segmentation_s:.2f} s, statistics {t.statistics_s:.2f} s)"
    )
    if overlay:
        table.add_row("overlay", overlay)
    console = Console()
    console.print(table)
    for warning in report.warnings:
        console.print(f"[yellow]note:[/] {warning}")
