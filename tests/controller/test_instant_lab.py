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


def test_the_k_balance_is_what_the_xrd_read_and_rises_with_the_k_excess() -> None:
    """KFe2As2 − FeAs of the reading (undetected: 0): negative with no K excess, positive with 0.10 of it."""
    world = World()
    means = {}
    for k_excess in (0.0, 0.10):
        readings = [
            instant_experiment(world, {**WEISS, "k_excess": k_excess}, np.random.default_rng(s)) for s in range(20)
        ]
        for r in readings:
            phases = r["phase_fractions_wt_pct"]
            assert r["k_balance_wt_pct"] == phases.get("KFe2As2", 0.0) - phases.get("FeAs", 0.0)
        means[k_excess] = np.mean([r["k_balance_wt_pct"] for r in readings])
    assert means[0.0] < -3.0 and means[0.10] > 3.0
