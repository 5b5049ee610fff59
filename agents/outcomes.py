"""What a campaign optimises: objectives with a direction, outcome constraints, and the best points.

A point is *feasible* when it did not fail and every constraint holds on its measured outcomes. In
single-objective mode the best point is the feasible one with the best objective; in multi-objective
mode it is the Pareto set: y dominates y' when y_i ≥ y'_i for every (signed, maximised) objective i and
y_i > y'_i for one.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Direction = Literal["max", "min"]
Comparison = Literal[">=", "<="]


@dataclass(frozen=True)
class Objective:
    name: str
    direction: Direction = "max"

    @property
    def sign(self) -> float:
        """+1 to maximise, −1 to minimise: the models always maximise sign · value."""
        return 1.0 if self.direction == "max" else -1.0


@dataclass(frozen=True)
class Constraint:
    name: str
    op: Comparison
    threshold: float

    def holds(self, value: float) -> bool:
        return value >= self.threshold if self.op == ">=" else value <= self.threshold


@dataclass(frozen=True)
class Goals:
    """Objectives (one, or two in multi-objective mode) and outcome constraints of a campaign."""

    objectives: tuple[Objective, ...]
    constraints: tuple[Constraint, ...] = ()

    @classmethod
    def build(
        cls,
        objective: str,
        direction: str,
        constraints: Sequence[Sequence[Any]],
        mode: str,
        second_objective: Sequence[str],
    ) -> Goals:
        """Check the agent's arguments and gather them; ValueError (one line) for a bad configuration."""
        if mode not in ("single", "multi"):
            raise ValueError(f"mode must be 'single' or 'multi', got {mode!r}")
        objectives = [(objective, direction)]
        if mode == "multi":
            if len(second_objective) != 2:
                raise ValueError("second_objective must be (name, 'max' | 'min')")
            objectives.append((second_objective[0], second_objective[1]))
        parsed = []
        for name, dirn in objectives:
            if not isinstance(name, str) or not name:
                raise ValueError(f"objective name must be a non-empty string, got {name!r}")
            if dirn not in ("max", "min"):
                raise ValueError(f"direction of {name} must be 'max' or 'min', got {dirn!r}")
            parsed.append(Objective(name, dirn))  # type: ignore[arg-type]
        if len({o.name for o in parsed}) != len(parsed):
            raise ValueError("the two objectives must differ")
        cons = []
        for c in constraints:
            if len(c) != 3:
                raise ValueError(f"a constraint is (outcome, '>=' | '<=', threshold), got {c!r}")
            name, op, thr = c
            if op not in (">=", "<="):
                raise ValueError(f"constraint operator must be '>=' or '<=', got {op!r}")
            try:
                thr = float(thr)
            except (TypeError, ValueError):
                raise ValueError(f"constraint threshold must be a number, got {thr!r}") from None
            if not math.isfinite(thr):
                raise ValueError(f"constraint threshold must be finite, got {thr}")
            cons.append(Constraint(str(name), op, thr))
        return cls(tuple(parsed), tuple(cons))

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    def outcome_names(self) -> list[str]:
        """Every outcome an observation must carry (or the space derive): objectives, then constraints."""
        return list(dict.fromkeys([*self.names(), *(c.name for c in self.constraints)]))

    def names(self) -> list[str]:
        return [o.name for o in self.objectives]


def outcome_value(
    name: str, params: Mapping[str, Any], outcomes: Mapping[str, Any], derive: Callable[[str, Mapping], float | None]
) -> float | None:
    """A measured outcome, else one computable from the design (`derive`), else None; non-finite → None."""
    value = outcomes.get(name)
    if value is None:
        value = derive(name, params)
    if isinstance(value, bool) or value is None:
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def feasible(goals: Goals, values: Mapping[str, float | None]) -> bool:
    """Every objective known and every constraint satisfied by the measured values."""
    if any(values.get(o.name) is None for o in goals.objectives):
        return False
    for c in goals.constraints:
        v = values.get(c.name)
        if v is None or not c.holds(v):
            return False
    return True


def pareto_mask(Y: np.ndarray) -> np.ndarray:
    """Rows of Y (n, m; maximised) that no other row dominates; duplicates of a Pareto row all stay."""
    n = len(Y)
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        dominated = np.all(Y[i] <= Y, axis=1) & np.any(Y[i] < Y, axis=1)
        keep[i] = not dominated.any()
    return keep


def best_indices(goals: Goals, values: Sequence[Mapping[str, float | None]]) -> list[int]:
    """Indices of the best feasible rows: the argmax (single) or the Pareto set sorted by objective 1 (multi)."""
    idx = [i for i, v in enumerate(values) if feasible(goals, v)]
    if not idx:
        return []
    Y = np.array([[o.sign * values[i][o.name] for o in goals.objectives] for i in idx])  # type: ignore[operator]
    if not goals.multi:
        return [idx[int(np.argmax(Y[:, 0]))]]
    keep = np.flatnonzero(pareto_mask(Y))
    keep = keep[np.argsort(-Y[keep, 0], kind="stable")]
    return [idx[k] for k in keep]
