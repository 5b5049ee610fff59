"""The lab's safety envelope: the limits every device enforces, whoever asks.

These numbers are the hardware's (silica tube, HIP vessel rating, mill motor), not the search space of a
campaign: `controller.recipe` draws its bounds from here and may only narrow them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Route = Literal["tube", "hip", "sps"]
ROUTES: tuple[Route, ...] = ("tube", "hip", "sps")


class LimitError(ValueError):
    """A setpoint outside the safety envelope; raised before anything moves."""


@dataclass(frozen=True)
class MillEnvelope:
    min_rpm: float = 50.0
    max_rpm: float = 800.0
    max_duration_h: float = 48.0
    min_bpr: float = 3.0
    max_bpr: float = 50.0
    vial_temperature_limit_c: float = 250.0
    """The mill's interlock stops the motor above this vial temperature."""


@dataclass(frozen=True)
class RouteEnvelope:
    max_temperature_c: float
    min_ramp_c_per_min: float
    max_ramp_c_per_min: float
    max_pressure_mpa: float


@dataclass(frozen=True)
class FurnaceEnvelope:
    routes: dict[str, RouteEnvelope]
    over_temperature_margin_k: float = 25.0
    """Trip when the reading exceeds the setpoint by this much."""
    heater_failure_deviation_k: float = 50.0
    heater_failure_window_s: float = 900.0
    """Trip when the heater is saturated yet the reading stays this far below the setpoint this long."""
    max_hold_h: float = 72.0
    safe_temperature_c: float = 100.0
    """Below this the furnace may be opened and the sample moved."""

    def route(self, route: str) -> RouteEnvelope:
        if route not in self.routes:
            raise LimitError(f"unknown furnace route {route!r}; expected one of {', '.join(self.routes)}")
        return self.routes[route]


MILL = MillEnvelope()
FURNACE = FurnaceEnvelope(
    routes={
        # silica tube: 1100 °C absolute; HIP vessel rated 200 MPa; SPS die (graphite) 100 MPa
        "tube": RouteEnvelope(
            max_temperature_c=1100.0, min_ramp_c_per_min=0.5, max_ramp_c_per_min=20.0, max_pressure_mpa=0.0
        ),
        "hip": RouteEnvelope(
            max_temperature_c=1100.0, min_ramp_c_per_min=0.5, max_ramp_c_per_min=20.0, max_pressure_mpa=200.0
        ),
        "sps": RouteEnvelope(
            max_temperature_c=1200.0, min_ramp_c_per_min=20.0, max_ramp_c_per_min=150.0, max_pressure_mpa=100.0
        ),
    }
)


def check_range(name: str, value: float, low: float, high: float, unit: str) -> None:
    """Raise `LimitError` unless low ≤ value ≤ high (NaN is never inside)."""
    if not (low <= value <= high):
        raise LimitError(f"{name} = {value:g} {unit} is outside the safety envelope [{low:g}, {high:g}] {unit}")
