"""The trial ledger: every suggestion is a trial, pending until it is ingested or failed.

One ledger per agent, so that a batch never clusters (pending designs go to the acquisition) and a
restart neither loses nor repeats a trial. A completed trial may be re-labelled failed later (STEM found
a bad sample); a failed one may be ingested again with outcomes (a correction).
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["pending", "completed", "failed"]
ID_KEY, FAILED_KEY, REASON_KEY = "_id", "failed", "reason"
_JSON_SCALARS = (str, int, float, bool, type(None))


@dataclass
class Trial:
    id: str
    params: dict[str, Any]
    status: Status = "pending"
    outcomes: dict[str, Any] = field(default_factory=dict)
    reason: str | None = None
    injected: bool = False
    """Not suggested by this agent (an operator's recipe, or a trial from before a restart)."""

    def as_point(self) -> dict[str, Any]:
        """The trial as an ingest-shaped dict: `_id`, design fields, outcomes, `failed` (+ `reason`)."""
        point = {ID_KEY: self.id, **self.params, **self.outcomes, FAILED_KEY: self.status == "failed"}
        if self.reason is not None:
            point[REASON_KEY] = self.reason
        return point

    def to_state(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "params": self.params,
            "status": self.status,
            "outcomes": self.outcomes,
            "reason": self.reason,
            "injected": self.injected,
        }


def clean_outcomes(raw: Mapping[str, Any]) -> dict[str, Any]:
    """Outcomes as JSON: numpy scalars become Python ones, non-finite numbers None; else a ValueError."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if hasattr(value, "item") and not isinstance(value, _JSON_SCALARS):  # numpy scalars
            value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            value = None
        try:
            json.dumps(value, allow_nan=False)
        except (TypeError, ValueError):
            raise ValueError(f"outcome {key!r} is not JSON-serialisable: {value!r}") from None
        out[str(key)] = value
    return out


class Ledger:
    """Trials by id, in the order they were created."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or uuid.uuid4().hex[:8]
        self.trials: dict[str, Trial] = {}
        self._counter = 0

    def __len__(self) -> int:
        return len(self.trials)

    def __contains__(self, trial_id: object) -> bool:
        return trial_id in self.trials

    def new_id(self) -> str:
        self._counter += 1
        return f"{self.prefix}-{self._counter:04d}"

    def add_pending(self, params: dict[str, Any]) -> str:
        trial_id = self.new_id()
        self.trials[trial_id] = Trial(trial_id, dict(params))
        return trial_id

    def record(
        self, trial_id: str | None, params: dict[str, Any], outcomes: dict[str, Any], failed: bool, reason: str | None
    ) -> Trial:
        """Complete or fail a trial (a known id), or add an injected one (no id, or an id not seen here)."""
        status: Status = "failed" if failed else "completed"
        if trial_id is not None and trial_id in self.trials:
            trial = self.trials[trial_id]
            trial.params, trial.outcomes, trial.status = dict(params), dict(outcomes), status
            trial.reason = reason if failed else None
            return trial
        trial_id = trial_id if trial_id is not None else self.new_id()
        trial = Trial(trial_id, dict(params), status, dict(outcomes), reason if failed else None, injected=True)
        self.trials[trial_id] = trial
        return trial

    def fail(self, trial_id: str, reason: str) -> None:
        if trial_id not in self.trials:
            raise KeyError(f"unknown trial id {trial_id!r}")
        trial = self.trials[trial_id]
        trial.status, trial.reason = "failed", str(reason)

    def withdraw(self, trial_id: str) -> None:
        """Forget a pending trial that will never run (an operator rejected it); it was never measured."""
        trial = self.trials.get(trial_id)
        if trial is None:
            raise KeyError(f"unknown trial id {trial_id!r}")
        if trial.status != "pending":
            raise ValueError(f"trial {trial_id} is {trial.status}, only a pending trial can be withdrawn")
        del self.trials[trial_id]

    def with_status(self, *statuses: Status) -> list[Trial]:
        return [t for t in self.trials.values() if t.status in statuses]

    def to_state(self) -> dict[str, Any]:
        return {"prefix": self.prefix, "counter": self._counter, "trials": [t.to_state() for t in self.trials.values()]}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Ledger:
        ledger = cls(state["prefix"])
        ledger._counter = int(state["counter"])
        for t in state["trials"]:
            ledger.trials[t["id"]] = Trial(
                t["id"], dict(t["params"]), t["status"], dict(t["outcomes"]), t["reason"], bool(t["injected"])
            )
        return ledger
