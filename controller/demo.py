"""`grainloop demo`: example recipes on the simulated lab, then a short Bayesian campaign through the service."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from controller.campaign.commands import readable
from controller.recipe import load_recipe
from controller.run_recipe import run_recipe
from controller.service.demo import run_service_campaign
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
    console.print(f"documents and HDF5 files: {out_dir}/ — Weiss 2015 record: 1.0 T; 2.7× that is the target")
    return run_service_campaign(console, out_dir, DEMO_BUDGET, optimum_t=best.trapped_field_t)
