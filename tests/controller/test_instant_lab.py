"""The instrument-free lab the optimiser benchmarks use: same model, same noise, same failures."""

from __future__ import annotations

import numpy as np

from controller.instant_lab import instant_experiment
from controller.recipe import load_recipe
from simulators.truth import evaluate
from simulators.world import World

WEISS = load_recipe("examples/recipes/weiss-2015.toml").model_dump()


def test_reading_is_the_truth_seen_through_the_station_noise() -> None:
    world = World()
    truth = evaluate(world, **WEISS).properties
    readings = [instant_experiment(world, WEISS, np.random.default_rng(s)) for s in range(40)]
    assert all(not r["failed"] and r["true_trapped_field_t"] == truth.trapped_field_t for r in readings)
    measured = np.array([r["trapped_field_t"] for r in readings])
    assert measured.std() > 0  # noisy
    rel = world.noise.trapped_field_rel_sigma
    assert abs(np.median(measured) / truth.trapped_field_t - 1) < 3 * rel  # creep is ~0.03 %, noise a few %
    again = instant_experiment(world, WEISS, np.random.default_rng(0))
    assert again == readings[0]  # seeded: a benchmark campaign repeats exactly


def test_a_recipe_that_trips_the_vial_interlock_fails() -> None:
    hot = World.model_validate({"mill": {"vial_rise_max_c": 400.0, "vial_heating_c_per_kw_s": 50.0}})
    recipe = {**WEISS, "mill_rpm": 800.0, "ball_to_powder_ratio": 40.0, "milling_time_h": 10.0}
    result = instant_experiment(hot, recipe, np.random.default_rng(0))
    assert result["failed"] and "vial" in result["reason"]
    assert result["true_trapped_field_t"] == 0.0
    assert not instant_experiment(World(), recipe, np.random.default_rng(0))["failed"]
