"""The plans a queue item may name, with their parameters validated before anything moves.

A queue item is `{"name": ..., "args": [...], "kwargs": {...}}` (bluesky-queueserver's shape). Only the
plans listed here run; their keyword arguments are validated by a pydantic model (`extra="forbid"`), so
a bad item is refused when it is added, not half-way through a plan. Positional arguments are refused:
every parameter has a name and a unit.

`HEATS_OR_SPINS` names the plans that need an operator or admin principal.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from controller.lab import Lab
from controller.plans import SampleContext, make_sample
from controller.plans.make_sample import safe_all
from controller.recipe import Recipe

Plan = Generator[Any, Any, Any]


class PlanItemError(ValueError):
    """A queue item that names no known plan or whose parameters are invalid; `errors` lists the fields."""

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class MakeSampleParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: Recipe
    campaign_id: str = Field(min_length=1, max_length=200)
    sample_id: str = Field(min_length=1, max_length=200)
    step: int = Field(ge=0)
    characterize: Literal["none", "image", "full"] = "full"


class HoldParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: float = Field(gt=0, le=3600, description="wall seconds to hold, with a checkpoint every tick")
    tick_s: float = Field(default=0.1, gt=0, le=10)


class NoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _make_sample(lab: Lab, p: MakeSampleParams) -> Plan:
    ctx = SampleContext(p.campaign_id, p.sample_id, p.step, p.recipe)
    return make_sample(lab, ctx, p.characterize)


def _hold(lab: Lab, p: HoldParams) -> Plan:
    """A run that touches no instrument: `duration_s` of checkpointed waiting (pause/resume drills, tests)."""

    @bpp.run_decorator(md={"plan_name": "hold", "duration_s": p.duration_s})
    def inner() -> Plan:
        n = max(1, round(p.duration_s / p.tick_s))
        for _ in range(n):
            yield from bps.checkpoint()
            yield from bps.sleep(p.tick_s)

    return (yield from inner())


def _safe_all(lab: Lab, p: NoParams) -> Plan:
    return (yield from safe_all(lab))


@dataclass(frozen=True)
class PlanSpec:
    params: type[BaseModel]
    build: Callable[[Lab, Any], Plan]
    description: str


PLANS: dict[str, PlanSpec] = {
    "make_sample": PlanSpec(MakeSampleParams, _make_sample, "mill → sinter → STEM → properties for one recipe"),
    "hold": PlanSpec(HoldParams, _hold, "a checkpointed wait that touches no instrument"),
    "safe_all": PlanSpec(NoParams, _safe_all, "stop every instrument: heater off, mill stopped, beam blanked"),
}
HEATS_OR_SPINS = frozenset({"make_sample"})


def validate_item(name: str, args: Sequence[Any] | None, kwargs: Mapping[str, Any] | None) -> BaseModel:
    """The validated parameters of a plan item, or PlanItemError naming what is wrong."""
    spec = PLANS.get(name)
    if spec is None:
        raise PlanItemError(f"unknown plan {name!r}; allowed: {', '.join(sorted(PLANS))}")
    if args:
        raise PlanItemError(f"plan {name!r} takes keyword arguments only, got {len(args)} positional")
    try:
        return spec.params.model_validate(dict(kwargs or {}))
    except ValidationError as exc:
        errors = [{"loc": ["kwargs", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        first = errors[0]
        raise PlanItemError(f"{name}: {'.'.join(first['loc'][1:])}: {first['msg']}", errors) from None


def build_plan(lab: Lab, name: str, kwargs: Mapping[str, Any] | None) -> Plan:
    params = validate_item(name, None, kwargs)
    return PLANS[name].build(lab, params)


def describe_plans() -> dict[str, dict[str, Any]]:
    """queueserver's `plans_allowed` shape: name → {name, description, parameters: [{name, ...}]}."""
    out = {}
    for name, spec in PLANS.items():
        schema = spec.params.model_json_schema()
        params = [
            {"name": key, "kind": {"name": "KEYWORD_ONLY", "value": 3}, "description": prop.get("description", "")}
            for key, prop in schema.get("properties", {}).items()
        ]
        out[name] = {"name": name, "description": spec.description, "parameters": params, "schema": schema}
    return out
