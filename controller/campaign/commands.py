"""`grainloop campaign run | resume | report`: closed-loop campaigns from the command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from rich.console import Console

from controller.campaign.config import CampaignConfig
from controller.campaign.journal import Journal, sqlite_url
from controller.campaign.report import plot_campaign
from controller.campaign.results import best_so_far, campaign_dir
from controller.recipe import one_line


class CampaignInputError(ValueError):
    """A campaign request the user can fix (reported as one line, exit status 2)."""


def data_dir(args: argparse.Namespace) -> Path:
    return Path(args.data_dir or os.environ.get("GRAINLOOP_DATA_DIR", "runs"))


def open_journal(root: Path) -> Journal:
    root.mkdir(parents=True, exist_ok=True)
    return Journal(os.environ.get("GRAINLOOP_DATABASE_URL") or sqlite_url(root / "grainloop.db"))


def _fixed(pairs: list[str]) -> dict[str, float | str]:
    out: dict[str, float | str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep:
            raise CampaignInputError(f"--fix expects FIELD=VALUE, got {pair!r}")
        try:
            out[name] = float(value)
        except ValueError:
            out[name] = value
    return out


def print_step(console: Console, outcome: Any) -> None:
    """One line per finished experiment: step, recipe, result, best so far."""
    r = outcome.recipe
    recipe = (
        f"{r['route']:>4} {r['mill_rpm']:3.0f}rpm {r['milling_time_h']:5.2f}h BPR{r['ball_to_powder_ratio']:4.1f} "
        f"δ{r['k_excess']:.3f} {r['dwell_temperature_c']:3.0f}°C×{r['dwell_time_h']:5.2f}h {r['pressure_mpa']:3.0f}MPa"
    )
    if outcome.failed:
        result = f"[red]failed[/red]: {outcome.result.get('reason', '?')[:50]}"
    else:
        result = f"{outcome.result['trapped_field_t']:.3f} T"
    best = f"{outcome.best_t:.3f}" if outcome.best_t is not None else "—"
    console.print(f"{outcome.step:3d} {recipe} → {result} (best {best})", soft_wrap=True)


def _summary(journal: Journal, campaign_id: str, reason: str | None) -> dict[str, Any]:
    config = CampaignConfig.model_validate(journal.campaign(campaign_id)["config"])
    rows = journal.steps(campaign_id)
    best, row = best_so_far(rows, config.min_tc_k)
    return {
        "campaign_id": campaign_id,
        "observations": sum(1 for r in rows if r.status in ("done", "failed")),
        "failed": sum(1 for r in rows if r.status == "failed"),
        "stop_reason": reason,
        "best": {"recipe": row.recipe, "trapped_field_t": best, "step": row.step} if row else None,
    }


def _drive(journal: Journal, campaign_id: str, root: Path, as_json: bool, pipeline: bool = True) -> int:
    from controller.campaign.runner import CampaignRunner, instrument_hours  # imports the agents (torch)

    console = Console(stderr=as_json)
    if not as_json:
        console.print(f"campaign [bold]{campaign_id}[/bold] — resume with: grainloop campaign resume {campaign_id}")
    on_step = None if as_json else lambda o: print_step(console, o)
    runner = CampaignRunner(journal, campaign_id, root, on_step=on_step, pipeline=pipeline)
    reason = runner.run()
    summary = _summary(journal, campaign_id, reason)
    summary["instrument_h"] = instrument_hours(journal.steps(campaign_id))
    png = plot_campaign(journal.steps(campaign_id), campaign_dir(root, campaign_id) / "campaign.png",
                        min_tc_k=runner.config.min_tc_k)  # fmt: skip
    summary["report_png"] = str(png)
    if as_json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        console.print(f"stopped: {reason} — {summary['instrument_h']:.1f} instrument hours")
        _print_best(console, summary)
        console.print(f"report: {png}")
    return 0


def _print_best(console: Console, summary: dict[str, Any]) -> None:
    best = summary["best"]
    if best is None:
        console.print("no successful experiment yet")
        return
    console.print(f"best: {best['trapped_field_t']:.3f} T at step {best['step']} — {readable(best['recipe'])}")


def readable(recipe: dict[str, Any]) -> str:
    """A recipe as `field=value` pairs with 3 significant digits, for people."""
    return ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in recipe.items())


def cmd_run(args: argparse.Namespace) -> int:
    from controller.cli import load_world_args

    world = load_world_args(args)
    try:
        config = CampaignConfig(
            agent=args.agent,
            budget_experiments=args.budget,
            budget_instrument_h=args.budget_hours,
            batch=args.batch,
            seed=args.seed if args.seed is not None else 0,
            characterize=args.characterize,
            fixed=_fixed(args.fix),
            min_tc_k=args.min_tc_k,
            target_trapped_field_t=args.target,
            patience=args.patience,
            world=world.model_dump(mode="json"),
        )
    except ValidationError as exc:
        raise CampaignInputError(f"invalid campaign: {one_line(exc)}") from None
    root = data_dir(args)
    journal = open_journal(root)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    campaign_id = args.id or f"C-{stamp}-{uuid.uuid4().hex[:4]}"
    try:
        journal.create_campaign(campaign_id, config.model_dump(mode="json"))
    except ValueError as exc:
        raise CampaignInputError(str(exc)) from None
    return _drive(journal, campaign_id, root, args.json, pipeline=not args.sequential)


def _existing(args: argparse.Namespace) -> tuple[Journal, Path]:
    root = data_dir(args)
    if not (root / "grainloop.db").exists() and not os.environ.get("GRAINLOOP_DATABASE_URL"):
        raise CampaignInputError(f"no campaign journal under {root} (set --data-dir or GRAINLOOP_DATA_DIR)")
    journal = open_journal(root)
    try:
        journal.campaign(args.campaign_id)
    except KeyError as exc:
        raise CampaignInputError(str(exc).strip("'\"")) from None
    return journal, root


def cmd_resume(args: argparse.Namespace) -> int:
    journal, root = _existing(args)
    return _drive(journal, args.campaign_id, root, args.json, pipeline=not args.sequential)


def cmd_report(args: argparse.Namespace) -> int:
    journal, root = _existing(args)
    config = CampaignConfig.model_validate(journal.campaign(args.campaign_id)["config"])
    png = plot_campaign(
        journal.steps(args.campaign_id),
        campaign_dir(root, args.campaign_id) / "campaign.png",
        min_tc_k=config.min_tc_k,
    )
    summary = {
        **_summary(journal, args.campaign_id, journal.campaign(args.campaign_id)["stop_reason"]),
        "report_png": str(png),
    }
    if args.json:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
    else:
        console = Console()
        _print_best(console, summary)
        console.print(f"report: {png}")
    return 0


def add_parser(sub: argparse._SubParsersAction) -> None:
    campaign = sub.add_parser("campaign", help="closed-loop campaigns").add_subparsers(dest="action", required=True)
    run = campaign.add_parser("run", help="start a campaign on the simulated lab")
    run.add_argument("--agent", choices=("bayes", "sobol", "random"), default="bayes")
    run.add_argument("--budget", type=int, default=20, help="experiments (failed ones count)")
    run.add_argument("--budget-hours", type=float, help="instrument hours")
    run.add_argument("--batch", type=int, default=1, help="recipes proposed at once")
    run.add_argument("--sequential", action="store_true", help="make a batch one sample after another")
    run.add_argument("--world", help="world TOML (default: the embedded default world)")
    run.add_argument("--seed", type=int, help="seed of the agent and the world")
    run.add_argument("--characterize", choices=("none", "image", "full"), default="none")
    run.add_argument("--fix", action="append", default=[], metavar="FIELD=VALUE", help="hold a recipe field")
    run.add_argument("--min-tc-k", type=float, default=30.0, help="outcome constraint on Tc")
    run.add_argument("--target", type=float, help="stop once a sample traps this many tesla")
    run.add_argument("--patience", type=int, help="stop after this many experiments without improvement")
    run.add_argument("--id", help="campaign id (default: C-<UTC time>-<random>)")
    run.add_argument("--data-dir", help="where journals and runs live (default: $GRAINLOOP_DATA_DIR or runs/)")
    run.add_argument("--json", action="store_true")
    run.add_argument("--time-acceleration", type=float, help=argparse.SUPPRESS)
    run.set_defaults(func=cmd_run)
    for name, func, text in (("resume", cmd_resume, "continue a campaign after a stop or crash"),
                             ("report", cmd_report, "plot a campaign and print its best recipe")):  # fmt: skip
        p = campaign.add_parser(name, help=text)
        p.add_argument("campaign_id")
        p.add_argument("--data-dir")
        p.add_argument("--json", action="store_true")
        if name == "resume":
            p.add_argument("--sequential", action="store_true", help="make a batch one sample after another")
        p.set_defaults(func=func)
