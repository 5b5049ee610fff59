"""The simulated clock's acceleration, and fault injection's seeding and forcing."""

from __future__ import annotations

import time

import numpy as np
import pytest

from simulators.clock import SimClock
from simulators.faults import FaultConfig
from simulators.properties import measure
from simulators.truth import evaluate
from simulators.world import World
from tests.simulators.test_process import WEISS


def test_simulated_time_runs_accelerated_and_a_change_of_factor_does_not_jump() -> None:
    clock = SimClock(1.0e5)
    w_outer0 = time.monotonic()
    t0 = clock.now_s()
    w_inner0 = time.monotonic()
    time.sleep(0.05)
    w_inner1 = time.monotonic()
    t1 = clock.now_s()
    w_outer1 = time.monotonic()
    # the simulated interval is bracketed by the wall intervals measured just inside and outside it
    assert (w_inner1 - w_inner0) * 1.0e5 <= t1 - t0 <= (w_outer1 - w_outer0) * 1.0e5
    before = clock.now_s()
    clock.set_acceleration(1.0)
    after = clock.now_s()
    assert 0 <= after - before < 1.0e5 * 0.05  # no jump backwards, no leap forwards
    assert clock.wall_seconds(36000.0) == 36000.0  # factor 1 is real time


def test_a_ten_hour_sinter_sleeps_well_under_a_second_at_the_default_factor() -> None:
    assert SimClock(World().time_acceleration).wall_seconds(10 * 3600.0) < 0.5


def test_bad_acceleration_is_refused() -> None:
    with pytest.raises(ValueError, match="time_acceleration"):
        SimClock(0.0)


def test_faults_fire_by_probability_with_a_seed_and_always_when_forced() -> None:
    config = FaultConfig(mill_jam_probability=0.3)
    draws = [config.fires("mill_jam", np.random.default_rng(seed)) for seed in range(400)]
    assert 0.2 < np.mean(draws) < 0.4
    assert draws == [config.fires("mill_jam", np.random.default_rng(seed)) for seed in range(400)]
    forced = FaultConfig(forced=("beam_blank",))
    assert all(forced.fires("beam_blank", np.random.default_rng(s)) for s in range(20))
    assert not any(forced.fires("mill_jam", np.random.default_rng(s)) for s in range(20))


def test_unknown_fault_names_are_refused() -> None:
    with pytest.raises(ValueError, match="forced"):
        FaultConfig(forced=("gremlins",))


def test_a_measurement_glitch_scales_the_reading_and_noise_has_the_configured_size() -> None:
    world = World()
    truth = evaluate(world, **WEISS).properties
    clean = [measure(world, truth, np.random.default_rng(s), hold_h=0.0)["trapped_field_t"] for s in range(300)]
    assert np.mean(clean) == pytest.approx(truth.trapped_field_t, rel=0.01)
    assert np.std(clean) / truth.trapped_field_t == pytest.approx(world.noise.trapped_field_rel_sigma, rel=0.2)
    glitched = measure(world, truth, np.random.default_rng(0), hold_h=0.0, glitch=True)["trapped_field_t"]
    assert glitched == pytest.approx(clean[0] * world.faults.measurement_glitch_factor)
    crept = measure(world, truth, np.random.default_rng(0), hold_h=24.0)["trapped_field_t"]
    assert crept == pytest.approx(clean[0] * (1 - world.noise.trapped_field_creep_per_24h))
