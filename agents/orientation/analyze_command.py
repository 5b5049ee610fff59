"""`grainloop orient analyze SCAN`: index a SPED scan, then grains and boundary statistics of the map.

SCAN is anything `agents.orientation.scan_input.load_scan` reads (the simulated lab's HDF5, `.hspy`,
`.zspy`). A progress bar follows the rows on a terminal; `--json` prints the `OrientationReport` as
exactly one JSON object. `--out` writes the orientation map with orix (`.ang` or `.h5`), `--ipf` / `--hist`
the figures. Bad input prints one line on stderr and exits 2.
"""

from __future__ import annotations

import argparse
import json
import sys

from agents.orientation.ang_io import MapError
from agents.orientation.grains_command import EXIT_BAD_INPUT, check_png_options, print_report_table, write_figures
from agents.orientation.phases import PhaseError
from agents.orientation.scan_input import ScanError


def run_analyze(args: argparse.Namespace) -> int:
    """Index, analyse, write what was asked for, print the report."""
    from rich.progress import Progress

    from agents.orientation.agent import OrientationAgent

    try:
        check_png_options(args)
        if args.out and not args.out.lower().endswith((".ang", ".h5", ".hdf5")):
            raise MapError(f"--out writes .ang or orix .h5, got {args.out}")
        agent = OrientationAgent(
            args.phase or ["Ba122"],
            resolution_deg=args.resolution_deg,
            threshold_deg=args.threshold_deg,
            critical_deg=args.critical_deg,
        )
        with Progress(disable=args.json or not sys.stderr.isatty(), console=None, transient=True) as bar:
            task = bar.add_task("indexing rows", total=None)
            analysis = agent.analyze_full(args.scan, lambda done, total: bar.update(task, completed=done, total=total))
        write_figures(analysis.grains, args.ipf, args.hist, args.critical_deg)
        if args.out:
            from agents.orientation.ang_io import save_map

            save_map(analysis.crystal_map, args.out)
    except (ScanError, MapError, PhaseError, ValueError) as exc:
        print(f"grainloop: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    report = analysis.report
    if args.json:
        sys.stdout.write(json.dumps(report.model_dump(mode="json")) + "\n")
    else:
        print_report_table(report, [p for p in (args.ipf, args.hist, args.out) if p])
    return 0
