"""The lab without its instruments, for benchmarks that run hundreds of campaigns in minutes.

`instant_experiment` makes a recipe's sample on the noiseless process model (an ideal furnace that follows
its programme exactly) and reads it through the property station's noise — the same model and the same
noise as a `make_sample` run, without the plants' lag and overshoot, without injected faults and without
the accelerated clock's wall time (~0.75 s per sample there, ~0.2 ms here). A recipe whose milling would
trip the mill's vial-temperature interlock fails, as it does in the lab.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from controller.phase_balance import K_BALANCE_KEY, k_balance_wt_pct
from controller.recipe import Recipe
from controller.yardstick import runnable
from simulators.properties import measure
from simulators.truth import evaluate
from simulators.world import World

RECIPE_FIELDS = tuple(Recipe.model_fields)


def instant_experiment(world: World, recipe: Mapping[str, Any], rng: np.random.Generator) -> dict[str, Any]:
    """One experiment: the station's readings, the K balance they show (`controller.phase_balance`), and
    the hidden `true_trapped_field_t` and `true_tc_k`.

    A failure is `{"failed": True, "reason": …, "true_trapped_field_t": 0.0, "true_tc_k": 0.0}`.
    """
    truth = evaluate(world, **{k: recipe[k] for k in RECIPE_FIELDS})
    if not runnable(truth):
        hidden = {"true_trapped_field_t": 0.0, "true_tc_k": 0.0}
        return {"failed": True, "reason": "vial over temperature while milling", **hidden}
    true = truth.properties
    reading = measure(world, true, rng)
    balance = k_balance_wt_pct(reading["phase_fractions_wt_pct"])  # type: ignore[arg-type]
    return {
        **reading,
        K_BALANCE_KEY: balance,
        "failed": False,
        "true_trapped_field_t": true.trapped_field_t,
        "true_tc_k": true.tc_k,
    }
