"""Cheap known functions and helpers for the agent tests (no simulators needed: these run in milliseconds)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pytest

from agents.bayesian import AcquisitionSettings

FAST = AcquisitionSettings(raw_samples=128, num_restarts=3, maxiter=10, mc_samples=64)
"""Smaller budgets for loop-heavy tests: same code paths, a fraction of the time."""

HARTMANN6_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
HARTMANN6_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)
HARTMANN6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
HARTMANN6_MAX = 3.32237


def hartmann6(x: np.ndarray) -> float:
    """The 6-D Hartmann function (negated, so its maximum is 3.32237 at a point inside [0, 1]^6)."""
    inner = np.sum(HARTMANN6_A * (np.asarray(x) - HARTMANN6_P) ** 2, axis=1)
    return float(np.sum(HARTMANN6_ALPHA * np.exp(-inner)))


def toy_trapped_field_t(recipe: Mapping[str, Any]) -> float:
    """A smooth stand-in for the trapped field of a recipe, with interior optima in rpm, milling time,
    temperature and K excess, HIP best and pressure helping (as in science.md, but cheap)."""
    x = np.array(
        [
            recipe["mill_rpm"] / 800.0,
            math.log(recipe["milling_time_h"]) / math.log(40.0),
            recipe["dwell_temperature_c"] / 1000.0,
            recipe["k_excess"] * 10.0,
        ]
    )
    route_bonus = {"tube": 0.0, "hip": 0.3, "sps": 0.15}[recipe["route"]]
    return float(2.0 - 3.0 * np.sum((x - [0.72, 0.24, 0.71, 0.4]) ** 2) + route_bonus + recipe["pressure_mpa"] / 800.0)


def toy_tc_k(recipe: Mapping[str, Any]) -> float:
    """Tc falls when K excess is off 0.04 (below 30 K outside about ±0.05)."""
    return 38.0 - 1600.0 * (recipe["k_excess"] - 0.04) ** 2


def observe_recipes(points: list[dict[str, Any]], rng: np.random.Generator | None = None) -> list[dict[str, Any]]:
    """Answer recipe suggestions with the toy outcomes (optionally noisy)."""
    noise = (lambda: 0.02 * rng.normal()) if rng is not None else (lambda: 0.0)
    return [{**p, "trapped_field_t": toy_trapped_field_t(p) + noise(), "tc_k": toy_tc_k(p)} for p in points]


def design(point: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in point.items() if k != "_id"}


def run_loop(agent: Any, f: Callable[[dict[str, Any]], dict[str, Any]], n_evals: int, q: int) -> None:
    """Suggest q, answer with f (which returns the outcome keys, or {"failed": True}), until n_evals trials."""
    while len(agent.ledger) < n_evals:
        batch = agent.suggest(min(q, n_evals - len(agent.ledger)))
        agent.ingest([{**p, **f(p)} for p in batch])


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)
