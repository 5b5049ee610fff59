"""The yardstick for campaigns: the best recipe this lab could run in a world, on its noiseless model."""

from __future__ import annotations

from collections.abc import Callable

from controller.recipe import LOG_AXES, ROUTE_SPACE, Recipe, recipe_bounds
from devices.envelope import MILL
from simulators.optimum import Optimum, find_optimum
from simulators.truth import Truth
from simulators.world import World


def runnable(truth: Truth) -> bool:
    """A recipe the lab can run: its milling stays below the mill's vial-temperature interlock."""
    return truth.powder.max_vial_temperature_c < MILL.vial_temperature_limit_c


def world_optimum(
    world: World,
    *,
    maxiter: int = 80,
    popsize: int = 20,
    seed: int = 0,
    progress: Callable[[Optimum], None] | None = None,
) -> tuple[Recipe, Optimum]:
    """The world's best runnable recipe within the recipe bounds, searched per furnace route."""
    best = find_optimum(
        world,
        recipe_bounds(),
        ROUTE_SPACE,
        LOG_AXES,
        seed=seed,
        maxiter=maxiter,
        popsize=popsize,
        progress=progress,
        feasible=runnable,
    )
    return Recipe.model_validate(best.recipe), best
