"""The recipe: one synthesis of a (Ba,K)Fe2As2 bulk, as the CLI, the API, the agents and the plans all see it.

Bounds are the campaign's decision space (science.md §5) inside the lab's safety envelope
(`devices.envelope`); route-specific pressure and ramp limits are checked together with the route.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.envelope import FURNACE, MILL, Route

# decision space per route: (pressure range MPa, ramp range K/min)
ROUTE_SPACE: dict[str, dict[str, tuple[float, float]]] = {
    "tube": {"pressure_mpa": (0.0, 0.0), "ramp_rate_c_per_min": (1.0, 20.0)},
    "hip": {"pressure_mpa": (0.0, 200.0), "ramp_rate_c_per_min": (1.0, 20.0)},
    "sps": {"pressure_mpa": (0.0, 100.0), "ramp_rate_c_per_min": (50.0, 100.0)},
}
LOG_AXES = frozenset({"milling_time_h", "dwell_time_h"})
"""Axes a person (and the optimisers) lay out on a log scale."""


class Recipe(BaseModel):
    """A synthesis recipe: milling, K excess, furnace route and programme."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    mill_rpm: float = Field(ge=200.0, le=MILL.max_rpm, description="planetary mill speed")
    milling_time_h: float = Field(ge=0.25, le=40.0, description="milling time")
    ball_to_powder_ratio: float = Field(ge=5.0, le=40.0, description="ball-to-powder mass ratio")
    k_excess: float = Field(ge=0.0, le=0.10, description="K excess δ weighed in to compensate K loss")
    route: Route = Field(description="furnace route: sealed tube, hot isostatic press or spark plasma sintering")
    dwell_temperature_c: float = Field(ge=400.0, le=1000.0, description="sintering dwell temperature")
    dwell_time_h: float = Field(ge=0.05, le=48.0, description="sintering dwell time")
    pressure_mpa: float = Field(ge=0.0, le=200.0, description="Ar (HIP) or uniaxial (SPS) pressure; 0 in a tube")
    ramp_rate_c_per_min: float = Field(ge=1.0, le=100.0, description="heating ramp")

    @model_validator(mode="after")
    def _route_limits(self) -> Recipe:
        space = ROUTE_SPACE[self.route]
        envelope = FURNACE.route(self.route)
        p_lo, p_hi = space["pressure_mpa"]
        r_lo, r_hi = space["ramp_rate_c_per_min"]
        if not p_lo <= self.pressure_mpa <= min(p_hi, envelope.max_pressure_mpa):
            raise ValueError(
                f"pressure_mpa = {self.pressure_mpa:g} is outside [{p_lo:g}, {p_hi:g}] for route {self.route}"
            )
        if not r_lo <= self.ramp_rate_c_per_min <= r_hi:
            raise ValueError(
                f"ramp_rate_c_per_min = {self.ramp_rate_c_per_min:g} is outside [{r_lo:g}, {r_hi:g}] "
                f"for route {self.route}"
            )
        return self


def recipe_bounds() -> dict[str, tuple[float, float]]:
    """Bounds of the continuous fields shared by all routes (route-specific ones in `ROUTE_SPACE`)."""
    out = {}
    for name, field in Recipe.model_fields.items():
        if name in ("route", "pressure_mpa", "ramp_rate_c_per_min"):
            continue
        lo = next(m.ge for m in field.metadata if hasattr(m, "ge"))
        hi = next(m.le for m in field.metadata if hasattr(m, "le"))
        out[name] = (float(lo), float(hi))
    return out


class RecipeError(ValueError):
    """A recipe that cannot be used, with a one-line reason."""


def one_line(error: ValidationError) -> str:
    """Pydantic's errors as one line: `field: message; field: message`."""
    parts = []
    for err in error.errors():
        where = ".".join(str(p) for p in err["loc"]) or "recipe"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def parse_recipe(data: dict[str, Any]) -> Recipe:
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(f"invalid recipe: {one_line(exc)}") from None


def load_recipe(path: str | Path) -> Recipe:
    """Read a recipe from TOML (top-level keys, or a `[recipe]` table)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"recipe file not found: {path}")
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"{path}: not valid TOML: {exc}") from None
    return parse_recipe(data.get("recipe", data))
