"""The world's best recipe: a global optimiser on the noiseless model, one search per furnace route.

Bounds come from the caller (the controller's recipe envelope), so the simulators never import it.
Log-scaled axes are searched in log space, as a person would lay out milling and dwell times.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
from scipy.optimize import differential_evolution

from simulators.truth import Truth, evaluate
from simulators.world import World


@dataclass(frozen=True)
class Optimum:
    recipe: dict[str, float | str]
    trapped_field_t: float
    evaluations: int


def find_optimum(
    world: World,
    bounds: Mapping[str, tuple[float, float]],
    route_bounds: Mapping[str, Mapping[str, tuple[float, float]]],
    log_axes: frozenset[str] = frozenset(),
    *,
    seed: int = 0,
    maxiter: int = 150,
    popsize: int = 20,
    progress: Callable[[Optimum], None] | None = None,
    feasible: Callable[[Truth], bool] | None = None,
) -> Optimum:
    """Maximise the noiseless trapped field over `bounds`, per route with its own `route_bounds` overrides.

    `progress` is called with each route's best as it is found. A recipe that `feasible` rejects (say,
    one whose mill would trip its vial interlock) scores 0 T.
    """
    best: Optimum | None = None
    total = 0
    for route, overrides in route_bounds.items():
        space = {**bounds, **overrides}
        names = list(space)
        lo = np.array([math.log(space[n][0]) if n in log_axes else space[n][0] for n in names])
        hi = np.array([math.log(space[n][1]) if n in log_axes else space[n][1] for n in names])
        fixed = {n for n in names if lo[names.index(n)] == hi[names.index(n)]}

        def decode(x: np.ndarray, names: list[str] = names) -> dict[str, float]:
            return {n: float(math.exp(v) if n in log_axes else v) for n, v in zip(names, x, strict=True)}

        def objective(x: np.ndarray, route: str = route, decode: Callable = decode) -> float:
            truth = evaluate(world, route=route, **decode(x))
            if feasible is not None and not feasible(truth):
                return 0.0
            return -truth.properties.trapped_field_t

        free = [i for i, n in enumerate(names) if n not in fixed]
        x0 = (lo + hi) / 2

        def wrapped(z: np.ndarray, free: list[int] = free, x0: np.ndarray = x0) -> float:
            x = x0.copy()
            x[free] = z
            return objective(x)

        result = differential_evolution(
            wrapped,
            list(zip(lo[free], hi[free], strict=True)),
            seed=seed,
            maxiter=maxiter,
            popsize=popsize,
            tol=1e-7,
            polish=True,
            init="sobol",
        )
        x = x0.copy()
        x[free] = result.x
        total += result.nfev
        candidate = Optimum(recipe={**decode(x), "route": route}, trapped_field_t=-float(result.fun), evaluations=total)
        if progress:
            progress(candidate)
        if best is None or candidate.trapped_field_t > best.trapped_field_t:
            best = candidate
    assert best is not None, "route_bounds must name at least one route"
    return Optimum(recipe=best.recipe, trapped_field_t=best.trapped_field_t, evaluations=total)
