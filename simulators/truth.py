"""The noiseless process model: recipe parameters → hidden state → true properties.

This is the yardstick: campaigns are judged against what this model says the world's best recipe can
do. The parameters are plain keyword arguments named like the controller's `Recipe` fields, so the
simulators stay independent of the controller.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from simulators.kinetics import SinterOutcome, sinter, sintered_body
from simulators.mill import MilledPowder, ideal_powder
from simulators.properties import TrueProperties, true_properties
from simulators.sample import SinteredBody
from simulators.world import World


@dataclass(frozen=True)
class Truth:
    """Everything hidden about one sample."""

    powder: MilledPowder
    outcome: SinterOutcome
    body: SinteredBody
    properties: TrueProperties


def ideal_profile(
    dwell_temperature_c: float,
    dwell_time_h: float,
    ramp_rate_c_per_min: float,
    pressure_mpa: float,
    ambient_c: float = 25.0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The programmed T(t): ramp from ambient, soak, controlled cool at the same rate (time, T, P)."""
    ramp_s = (dwell_temperature_c - ambient_c) / ramp_rate_c_per_min * 60.0
    dwell_s = dwell_time_h * 3600.0
    up = np.linspace(0.0, ramp_s, 80)
    hold = ramp_s + np.concatenate([[0.0], np.geomspace(1.0, dwell_s, 160)])
    down = ramp_s + dwell_s + np.linspace(0.0, ramp_s, 60)[1:]
    time_s = np.concatenate([up, hold[1:], down])
    temp_c = np.concatenate(
        [
            np.linspace(ambient_c, dwell_temperature_c, 80),
            np.full(len(hold) - 1, dwell_temperature_c),
            np.linspace(dwell_temperature_c, ambient_c, 60)[1:],
        ]
    )
    return time_s, temp_c, np.full_like(time_s, pressure_mpa)


def evaluate(
    world: World,
    *,
    mill_rpm: float,
    milling_time_h: float,
    ball_to_powder_ratio: float,
    k_excess: float,
    route: str,
    dwell_temperature_c: float,
    dwell_time_h: float,
    pressure_mpa: float,
    ramp_rate_c_per_min: float,
) -> Truth:
    """The noiseless outcome of a recipe on an ideal furnace (programmed profile, no offsets)."""
    powder = ideal_powder(world.mill, mill_rpm, milling_time_h, ball_to_powder_ratio, k_excess)
    time_s, temp_c, pressure = ideal_profile(dwell_temperature_c, dwell_time_h, ramp_rate_c_per_min, pressure_mpa)
    return truth_from_history(world, powder, route, time_s, temp_c, pressure)


def truth_from_history(
    world: World, powder: MilledPowder, route: str, time_s: np.ndarray, temp_c: np.ndarray, pressure: np.ndarray
) -> Truth:
    """Hidden state and true properties after a furnace history (ideal or as the plant really ran)."""
    outcome = sinter(world.kinetics, world.texture, powder, route, time_s, temp_c, pressure)
    body = sintered_body(outcome, powder)
    return Truth(powder=powder, outcome=outcome, body=body, properties=true_properties(world, outcome, body))
