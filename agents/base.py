"""What every agent shares: the trial ledger, parsing of observations, best points, checkpoints.

A subclass says how to propose designs (`_propose`) and what else its checkpoint holds
(`_config`, `_extra_state`, `_restore_extra`); `suggest`, `ingest`, `get_best_points`,
`register_failure`, `checkpoint` and `restore` are the same for all agents.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from agents.ledger import FAILED_KEY, ID_KEY, REASON_KEY, Ledger, Trial, clean_outcomes
from agents.outcomes import Goals, best_indices, outcome_value
from agents.space import Space, space_from_state

log = logging.getLogger(__name__)

DEFAULT_CONSTRAINTS: tuple[tuple[str, str, float], ...] = (("tc_k", ">=", 30.0),)
STATE_VERSION = 1


class LedgerAgent(ABC):
    """An `agents.protocol.Optimizer` over a `Space`, minus the proposal strategy."""

    kind: ClassVar[str]

    def __init__(
        self,
        space: Space,
        *,
        seed: int,
        objective: str = "trapped_field_t",
        direction: str = "max",
        constraints: Sequence[Sequence[Any]] = DEFAULT_CONSTRAINTS,
        mode: str = "single",
        second_objective: Sequence[str] = ("process_time_h", "min"),
        id_prefix: str | None = None,
    ) -> None:
        if not isinstance(space, Space):
            raise ValueError(f"space must be an agents.space.Space, got {type(space).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, int | np.integer):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        self.space = space
        self.seed = int(seed)
        self.goals = Goals.build(objective, direction, constraints, mode, second_objective)
        clash = sorted(set(self.goals.outcome_names()) & set(space.fields))
        if clash:
            raise ValueError(f"outcome(s) {', '.join(clash)} share a name with design fields")
        self.ledger = Ledger(id_prefix)
        self._rng = np.random.default_rng(self.seed)
        self._base_config = {
            "seed": self.seed,
            "objective": objective,
            "direction": direction,
            "constraints": [list(c) for c in constraints],
            "mode": mode,
            "second_objective": list(second_objective),
            "id_prefix": self.ledger.prefix,
        }

    # -- protocol ------------------------------------------------------------------------------------

    def suggest(self, n: int = 1) -> list[dict[str, Any]]:
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 1:
            raise ValueError(f"n must be a positive integer, got {n!r}")
        out = []
        for design in self._propose(int(n)):
            params = self.space.validate(design)
            out.append({ID_KEY: self.ledger.add_pending(params), **params})
        return out

    def ingest(self, points: list[dict[str, Any]]) -> None:
        parsed = [self._parse(p) for p in points]  # all checked before any is taken
        for args in parsed:
            self.ledger.record(*args)

    def get_best_points(self) -> list[dict[str, Any]]:
        trials = self.ledger.with_status("completed")
        values = [self.outcome_values(t) for t in trials]
        return [self._point_with(trials[i], values[i]) for i in best_indices(self.goals, values)]

    def register_failure(self, _id: str, reason: str) -> None:
        self.ledger.fail(_id, reason)

    def withdraw(self, _id: str) -> None:
        """A suggestion that will not be made (rejected before it ran): no longer pending, not a failure."""
        self.ledger.withdraw(_id)

    def checkpoint(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": STATE_VERSION,
            "space": self.space.to_state(),
            "config": {**self._base_config, **self._config()},
            "ledger": self.ledger.to_state(),
            "rng": self._rng.bit_generator.state,
            **self._extra_state(),
        }

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Self:
        if state.get("kind") != cls.kind:
            raise ValueError(f"a {state.get('kind')!r} checkpoint cannot restore a {cls.kind!r} agent")
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"checkpoint version {state.get('version')!r} is not {STATE_VERSION}")
        agent = cls(space_from_state(state["space"]), **state["config"])
        agent.ledger = Ledger.from_state(state["ledger"])
        agent._rng.bit_generator.state = state["rng"]
        agent._restore_extra(state)
        return agent

    # -- for subclasses ------------------------------------------------------------------------------

    @abstractmethod
    def _propose(self, n: int) -> list[dict[str, Any]]:
        """n designs (may be fewer when a pool runs out)."""

    def _config(self) -> dict[str, Any]:
        """Constructor keyword arguments beyond the shared ones (JSON-serialisable)."""
        return {}

    def _extra_state(self) -> dict[str, Any]:
        return {}

    def _restore_extra(self, state: Mapping[str, Any]) -> None:
        return None

    # -- helpers -------------------------------------------------------------------------------------

    def outcome_values(self, trial: Trial) -> dict[str, float | None]:
        """The objectives' and constraints' values of a trial (measured, or derived from the design)."""
        derive = self.space.derived_outcome
        return {name: outcome_value(name, trial.params, trial.outcomes, derive) for name in self.goals.outcome_names()}

    def _point_with(self, trial: Trial, values: Mapping[str, float | None]) -> dict[str, Any]:
        point = trial.as_point()
        for name, value in values.items():
            point.setdefault(name, value)
        return point

    def _parse(self, point: Mapping[str, Any]) -> tuple[str | None, dict, dict, bool, str | None]:
        if not isinstance(point, Mapping):
            raise ValueError(f"an observation must be a dict, got {type(point).__name__}")
        rest = dict(point)
        trial_id = rest.pop(ID_KEY, None)
        trial_id = None if trial_id is None else str(trial_id)
        failed = rest.pop(FAILED_KEY, False)
        if not isinstance(failed, bool | np.bool_) and failed not in (0, 1):
            raise ValueError(f"'failed' must be a bool, got {failed!r}")
        failed = bool(failed)
        reason = rest.pop(REASON_KEY, None)
        reason = None if reason is None else str(reason)
        where = f"observation {trial_id}" if trial_id else "injected observation"
        has_design = any(f in rest for f in self.space.fields)
        if not has_design and trial_id in self.ledger:
            params = dict(self.ledger.trials[trial_id].params)
        else:
            try:
                params = self.space.validate(rest)
            except ValueError as exc:
                raise ValueError(f"{where}: {exc}") from None
        outcomes = clean_outcomes({k: v for k, v in rest.items() if k not in self.space.fields})
        if not failed:
            derive = self.space.derived_outcome
            missing = [n for n in self.goals.outcome_names() if outcome_value(n, params, outcomes, derive) is None]
            if missing:
                raise ValueError(
                    f"{where}: outcome(s) {', '.join(missing)} missing or not finite; "
                    "send failed=True (with a reason) for an experiment that failed"
                )
        return trial_id, params, outcomes, failed, reason
