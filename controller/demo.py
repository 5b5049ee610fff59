"""`grainloop demo`: example recipes on the simulated lab, then a short Bayesian campaign against the optimum."""

from __future__ import annotations

import uuid
from pathlib import Path

from rich.console import Console
from rich.table import Table

from controller.campaign.commands import open_journal, print_step, readable
from controller.campaign.config import CampaignConfig
from controller.campaign.report import plot_campaign
from controller.campaign.results import best_so_far, campaign_dir
from controller.campaign.runner import CampaignRunner
from controller.recipe import load_recipe
from controller.run_recipe import run_recipe
from controller.yardstick import world_optimum
from simulators.world import World

DEMO_BUDGET = 16
RECIPES = Path(__file__).resolve().parents[1] / "examples" / "recipes"
DEMO = (("weiss-2015.toml", "full"), ("sps-fast.toml", "none"), ("tube-overcooked.toml", "none"))


def run_demo(out_dir: Path) -> int:
    console = Console()
    world = World()
    console.rule(f"grainloop demo — simulated lab, world '{world.name}', seed {world.seed}")
    table = Table(title="measured at 5 K, Ø10 × 18 mm (trapped field) and 4.2 K self-field (Jc)")
    for column in (
        "recipe",
        "route",
        "dwell",
        "characterised",
        "B_trapped / T",
        "Jc / A cm⁻²",
        "Tc / K",
        "ρ_rel",
        "wall / s",
    ):
        table.add_column(column, justify="right" if column not in ("recipe", "route") else "left")
    plots = []
    for name, characterize in DEMO:
        recipe = load_recipe(RECIPES / name)
        console.print(f"[bold]{name}[/bold]: {recipe.model_dump()}")
        result = run_recipe(recipe, world, out_dir / Path(name).stem, characterize=characterize, console=console)
        p = result.properties
        plots.append(result.summary_png)
        table.add_row(
            name.removesuffix(".toml"),
            recipe.route,
            f"{recipe.dwell_temperature_c:.0f} °C × {recipe.dwell_time_h:g} h",
            characterize,
            f"{p['trapped_field_t']:.2f}",
            f"{p['jc_a_per_cm2']:.3g}",
            f"{p['tc_k']:.1f}",
            f"{p['relative_density']:.3f}",
            f"{result.wall_s:.1f}",
        )
    console.print(table)
    with console.status("searching the world's optimum on its noiseless model…"):
        optimum, best = world_optimum(world, maxiter=30, popsize=12)
    recipe = readable(optimum.model_dump())
    console.print(f"the world's best recipe traps [bold]{best.trapped_field_t:.2f} T[/bold]: {recipe}")
    console.print("summary plots:\n  " + "\n  ".join(plots))
    run_demo_campaign(console, world, out_dir, optimum_t=best.trapped_field_t)
    console.print(f"documents and HDF5 files: {out_dir}/ — Weiss 2015 record: 1.0 T; 2.7× that is the target")
    return 0


def run_demo_campaign(console: Console, world: World, out_dir: Path, *, optimum_t: float) -> None:
    """A short closed-loop Bayesian campaign, printed step by step, with its report plot."""
    console.rule(f"a Bayesian campaign of {DEMO_BUDGET} experiments on the same world")
    journal = open_journal(out_dir)
    campaign_id = f"C-demo-{uuid.uuid4().hex[:6]}"
    config = CampaignConfig(agent="bayes", budget_experiments=DEMO_BUDGET, world=world.model_dump(mode="json"))
    journal.create_campaign(campaign_id, config.model_dump(mode="json"))
    runner = CampaignRunner(journal, campaign_id, out_dir, on_step=lambda outcome: print_step(console, outcome))
    reason = runner.run()
    rows = journal.steps(campaign_id)
    found, row = best_so_far(rows, config.min_tc_k)
    png = plot_campaign(rows, campaign_dir(out_dir, campaign_id) / "campaign.png", min_tc_k=config.min_tc_k,
                        optimum_t=optimum_t)  # fmt: skip
    console.print(f"stopped: {reason}")
    if row is not None and found is not None:
        console.print(
            f"best after {len(rows)} experiments: [bold]{found:.3f} T[/bold] "
            f"({100 * found / optimum_t:.0f} % of the optimum) — {readable(row.recipe)}"
        )
    console.print(f"campaign plot: {png}")
