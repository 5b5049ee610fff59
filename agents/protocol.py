"""The agent contract, in the shape of bluesky-adaptive's `Optimizer` protocol (plus failures and checkpoints).

Points are plain dicts, so they cross a process boundary as JSON or msgpack:

- a *suggestion* is `{"_id": str, **design}`; the design validates as a `Recipe` (after dropping `_id`)
  for a recipe space, or holds one number per column for a generic space;
- an *observation* given to `ingest` is the design fields, the outcome keys (`"trapped_field_t"`,
  `"tc_k"`, `"jc_a_per_cm2"`, `"relative_density"`, optionally `"process_time_h"`, …) and
  `"failed": bool` with an optional `"reason"`; its `"_id"` names the suggestion it answers (then the
  design fields may be left out) and is absent for an operator-injected design.

Every suggestion is pending until it is ingested or failed, and pending designs are passed to the
acquisition, so a batch never clusters and one trial is never proposed twice.
"""

from __future__ import annotations

from typing import Any, Protocol, Self, runtime_checkable

from agents.ledger import FAILED_KEY, ID_KEY, REASON_KEY

__all__ = ["FAILED_KEY", "ID_KEY", "REASON_KEY", "Optimizer"]


@runtime_checkable
class Optimizer(Protocol):
    """Suggest designs, learn from their outcomes, report the best, survive a restart."""

    def suggest(self, n: int = 1) -> list[dict[str, Any]]:
        """`n` new designs, each with a unique `"_id"`, all pending from now on (fewer when a pool runs out)."""
        ...

    def ingest(self, points: list[dict[str, Any]]) -> None:
        """Learn from observations (answers to suggestions, or injected designs); all or none are taken."""
        ...

    def get_best_points(self) -> list[dict[str, Any]]:
        """The best feasible observed point (single objective) or the Pareto set (multi), with outcomes."""
        ...

    def register_failure(self, _id: str, reason: str) -> None:
        """Mark a trial failed: a pending one that went wrong, or a completed one found bad later."""
        ...

    def withdraw(self, _id: str) -> None:
        """Forget a pending trial that will never run (rejected before it ran); not a failure."""
        ...

    def checkpoint(self) -> dict[str, Any]:
        """JSON-serialisable state: observations, pending trials, failures, RNG state, model state."""
        ...

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Self:
        """An agent that suggests exactly as the checkpointed one would have next."""
        ...
