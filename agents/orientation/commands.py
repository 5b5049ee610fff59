"""`grainloop orient analyze | grains`: argument parsing only; the work lives in its own module."""

from __future__ import annotations

import argparse

from agents.orientation.grains_command import add_grains_parser
from agents.orientation.report import DEFAULT_CRITICAL_DEG


def cmd_analyze(args: argparse.Namespace) -> int:
    from agents.orientation.analyze_command import run_analyze

    return run_analyze(args)


def add_parser(sub: argparse._SubParsersAction) -> None:
    orient = sub.add_parser("orient", help="orientation maps of SPED scans; grains and boundaries")
    actions = orient.add_subparsers(dest="action", required=True)

    analyze = actions.add_parser("analyze", help="index a SPED scan and report its grains and boundaries")
    analyze.add_argument("scan", help="SPED scan: the simulated lab's HDF5, .hspy or .zspy (4-D, calibrated)")
    analyze.add_argument(
        "--phase",
        action="append",
        metavar="NAME|CIF",
        help="phase to index against (repeat for several; default Ba122): a known name or a .cif file",
    )
    analyze.add_argument("--resolution-deg", type=float, default=1.0, help="template library grid (default 1°)")
    analyze.add_argument(
        "--threshold-deg", type=float, default=2.0, help="grain reconstruction threshold (default 2°, below θc)"
    )
    analyze.add_argument(
        "--critical-deg", type=float, default=DEFAULT_CRITICAL_DEG, help="θc of the low-angle fraction (default 9°)"
    )
    analyze.add_argument("--json", action="store_true", help="print the report as one JSON object")
    analyze.add_argument("--ipf", metavar="OUT.png", help="write the IPF-z map with grain boundaries here")
    analyze.add_argument("--hist", metavar="OUT.png", help="write the misorientation histogram here")
    analyze.add_argument("--out", metavar="MAP.ang", help="write the orientation map (.ang or orix .h5)")
    analyze.set_defaults(func=cmd_analyze)

    add_grains_parser(actions)
