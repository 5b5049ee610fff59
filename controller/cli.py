"""`grainloop`: the command line. Bad input exits with status 2 and a one-line reason on stderr."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from agents.segmentation.image_input import ImageError
from controller.campaign.commands import CampaignInputError
from controller.recipe import RecipeError, load_recipe, one_line
from controller.service.commands import ServiceInputError
from devices.envelope import LimitError
from simulators.world import World, load_world

EXIT_BAD_INPUT = 2
EXIT_FAILED = 1


class BadInputError(Exception):
    """Input the user can fix; reported as one line, exit status 2."""


def load_world_args(args: argparse.Namespace) -> World:
    try:
        world = load_world(args.world)
    except FileNotFoundError as exc:
        raise BadInputError(str(exc)) from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{args.world}: not valid TOML: {exc}") from None
    except ValidationError as exc:
        raise BadInputError(f"invalid world {args.world}: {one_line(exc)}") from None
    updates: dict[str, Any] = {}
    if getattr(args, "seed", None) is not None:
        updates["seed"] = args.seed
    if getattr(args, "time_acceleration", None) is not None:
        if not args.time_acceleration > 0:
            raise BadInputError(f"--time-acceleration must be > 0, got {args.time_acceleration}")
        updates["time_acceleration"] = args.time_acceleration
    return world.model_copy(update=updates) if updates else world


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


def cmd_recipe_run(args: argparse.Namespace) -> int:
    from controller.run_recipe import run_recipe

    try:
        recipe = load_recipe(args.file)
    except RecipeError as exc:
        raise BadInputError(str(exc)) from None
    world = load_world_args(args)
    out = Path(args.out) if args.out else Path("runs") / Path(args.file).stem
    result = run_recipe(
        recipe, world, out, characterize=args.characterize, reveal=args.reveal, show_progress=not args.json
    )
    if args.json:
        _print_json(result.as_dict())
    if result.failure:
        print(f"grainloop: experiment failed: {result.failure} (instruments made safe; runs in {out})", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        return 0
    console = Console()
    table = Table(title=f"{result.sample_id} — {Path(args.file).name} on world '{world.name}' (seed {world.seed})")
    table.add_column("property")
    table.add_column("measured", justify="right")
    if result.truth:
        table.add_column("truth", justify="right")
    truth = (result.truth or {}).get("properties", {})
    for key, value in result.properties.items():
        row = [key, f"{value:.4g}"]
        if result.truth:
            row.append(f"{truth.get(key, float('nan')):.4g}")
        table.add_row(*row)
    console.print(table)
    phases = ", ".join(f"{k} {v:.1f}" for k, v in result.phase_fractions_wt_pct.items())
    console.print(f"phases (wt%): {phases}")
    console.print(f"run directory: {result.run_dir} ({len(result.files)} runs, {result.wall_s:.1f} s wall)")
    console.print(f"summary plot: {result.summary_png}")
    return 0


def cmd_world_optimum(args: argparse.Namespace) -> int:
    from controller.yardstick import world_optimum

    world = load_world_args(args)
    console = Console(stderr=True)

    def progress(candidate: Any) -> None:
        if not args.json:
            console.print(f"  {candidate.recipe['route']:>4}: {candidate.trapped_field_t:.3f} T")

    with console.status("searching the noiseless model (differential evolution, per route)…"):
        recipe, best = world_optimum(world, seed=args.seed_search, maxiter=args.maxiter, progress=progress)
    out = {"recipe": recipe.model_dump(), "trapped_field_t": round(best.trapped_field_t, 4), "world": world.name}
    if args.json:
        _print_json(out)
        return 0
    table = Table(
        title=f"optimum of world '{world.name}': {best.trapped_field_t:.3f} T at 5 K ({best.evaluations} evaluations)"
    )
    table.add_column("field")
    table.add_column("value", justify="right")
    for key, value in recipe.model_dump().items():
        table.add_row(key, f"{value:.4g}" if isinstance(value, float) else str(value))
    Console().print(table)
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from controller.demo import run_demo

    return run_demo(Path(args.out))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="grainloop", description="Autonomous lab controller for polycrystalline materials."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    recipe = sub.add_parser("recipe", help="run recipes on the simulated lab").add_subparsers(
        dest="action", required=True
    )
    run = recipe.add_parser("run", help="make and measure one sample with a real RunEngine")
    run.add_argument("file", help="recipe TOML")
    run.add_argument("--world", help="world TOML (default: the embedded default world)")
    run.add_argument("--seed", type=int, help="override the world's seed")
    run.add_argument("--characterize", choices=("none", "image", "full"), default="full")
    run.add_argument("--reveal", action="store_true", help="also print the hidden truth (simulation only)")
    run.add_argument("--json", action="store_true", help="one JSON object on stdout")
    run.add_argument("--out", help="run directory (default: runs/<recipe name>)")
    run.add_argument("--time-acceleration", type=float, help="simulated seconds per wall second")
    run.set_defaults(func=cmd_recipe_run)

    world = sub.add_parser("world", help="the simulated world").add_subparsers(dest="action", required=True)
    optimum = world.add_parser("optimum", help="the world's best recipe on the noiseless model")
    optimum.add_argument("--world", help="world TOML (default: the embedded default world)")
    optimum.add_argument("--json", action="store_true")
    optimum.add_argument("--maxiter", type=int, default=80, help="differential-evolution generations per route")
    optimum.add_argument("--seed-search", type=int, default=0, help="seed of the optimiser")
    optimum.set_defaults(func=cmd_world_optimum)

    from controller.campaign.commands import add_parser as add_campaign_parser

    add_campaign_parser(sub)

    from agents.orientation.commands import add_parser as add_orient_parser
    from agents.segmentation.commands import add_parser as add_seg_parser

    add_seg_parser(sub)
    add_orient_parser(sub)

    from controller.service.commands import add_parser as add_service_parser

    add_service_parser(sub)

    demo = sub.add_parser("demo", help="a few recipes on the simulated lab, with a summary")
    demo.add_argument("--out", default="runs/demo")
    demo.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (BadInputError, LimitError, CampaignInputError, ImageError, ServiceInputError) as exc:
        print(f"grainloop: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("grainloop: interrupted; instruments were made safe", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
