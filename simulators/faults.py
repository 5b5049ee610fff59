"""Seeded, configurable fault injection for the simulated instruments.

Each fault has a probability per use of the instrument (a furnace run, a milling run, an acquisition,
a measurement); `forced` names faults that always fire, for tests and drills. Draws come from the
world's seeded generator for that sample and instrument, so a given seed fails the same way every time.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

FaultName = Literal[
    "thermocouple_open",
    "heater_failure",
    "overshoot",
    "mill_jam",
    "vial_overtemperature",
    "beam_blank",
    "beam_drift",
    "detector_dropout",
    "measurement_glitch",
]


class FaultConfig(BaseModel):
    """Probabilities of each fault per instrument use, and their severities. All off by default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    forced: tuple[FaultName, ...] = ()
    thermocouple_open_probability: float = Field(0.0, ge=0, le=1)
    heater_failure_probability: float = Field(0.0, ge=0, le=1)
    overshoot_probability: float = Field(0.0, ge=0, le=1)
    overshoot_k: float = Field(40.0, ge=0, description="extra peak above the dwell when the overshoot fault fires")
    mill_jam_probability: float = Field(0.0, ge=0, le=1)
    vial_overtemperature_probability: float = Field(0.0, ge=0, le=1)
    vial_overheat_factor: float = Field(3.0, gt=1, description="heating multiplier when cooling fails")
    beam_blank_probability: float = Field(0.0, ge=0, le=1)
    beam_drift_probability: float = Field(0.0, ge=0, le=1)
    beam_drift_nm_per_s: float = Field(5.0, ge=0)
    detector_dropout_probability: float = Field(0.0, ge=0, le=1)
    detector_dropout_fraction: float = Field(0.2, ge=0, le=1)
    measurement_glitch_probability: float = Field(0.0, ge=0, le=1)
    measurement_glitch_factor: float = Field(0.3, gt=0, description="a glitched reading is scaled by this")

    def fires(self, fault: FaultName, rng: np.random.Generator) -> bool:
        """Whether `fault` happens on this use (always draws, so later draws do not shift)."""
        draw = rng.random()
        return fault in self.forced or draw < getattr(self, f"{fault}_probability")

    def onset_fraction(self, rng: np.random.Generator) -> float:
        """When in the run a fault sets in, as a fraction of the run (between 20 % and 80 %)."""
        return float(rng.uniform(0.2, 0.8))
