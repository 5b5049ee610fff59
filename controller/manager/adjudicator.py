"""The safety envelope check every recipe passes before it may be queued, whoever proposed it.

A recipe outside the hardware's envelope (`devices.envelope`: tube rating, HIP vessel, mill motor) is
*unsafe* — refused with the rule it breaks (HTTP 409). A recipe inside the envelope but outside the
campaign's decision space, or malformed, is merely *invalid* (422, pydantic's field errors). The devices
enforce the same limits again when they move; this check refuses early, with nothing queued.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devices.envelope import FURNACE, MILL, LimitError, check_range


def _number(recipe: Mapping[str, Any], key: str) -> float | None:
    value = recipe.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def envelope_violation(recipe: Mapping[str, Any]) -> str | None:
    """The first envelope rule `recipe` breaks, as one line; None if it breaks none it states."""
    checks: list[tuple[str, float, float, str]] = [
        ("mill_rpm", MILL.min_rpm, MILL.max_rpm, "rpm"),
        ("milling_time_h", 0.0, MILL.max_duration_h, "h"),
        ("ball_to_powder_ratio", MILL.min_bpr, MILL.max_bpr, ""),
        ("dwell_time_h", 0.0, FURNACE.max_hold_h, "h"),
    ]
    route_name = recipe.get("route")
    if isinstance(route_name, str):
        try:
            route = FURNACE.route(route_name)
        except LimitError as exc:
            return str(exc)
        checks += [
            ("dwell_temperature_c", -273.15, route.max_temperature_c, "°C"),
            ("ramp_rate_c_per_min", route.min_ramp_c_per_min, route.max_ramp_c_per_min, "°C/min"),
            ("pressure_mpa", 0.0, route.max_pressure_mpa, "MPa"),
        ]
    for key, low, high, unit in checks:
        value = _number(recipe, key)
        if value is None:
            continue
        try:
            check_range(key, value, low, high, unit)
        except LimitError as exc:
            where = (
                f" (route {route_name})"
                if key in ("dwell_temperature_c", "ramp_rate_c_per_min", "pressure_mpa")
                else ""
            )
            return f"{exc}{where}"
    return None
