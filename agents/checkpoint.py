"""Restore any agent from its checkpoint, whatever its kind (for a service that only kept the state)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agents.base import LedgerAgent
from agents.baselines import RandomAgent, SobolAgent


def restore_agent(state: Mapping[str, Any]) -> LedgerAgent:
    """The agent a `checkpoint()` came from, ready to suggest exactly as it would have next."""
    kind = state.get("kind")
    if kind == RandomAgent.kind:
        return RandomAgent.restore(dict(state))
    if kind == SobolAgent.kind:
        return SobolAgent.restore(dict(state))
    if kind == "bayesian":
        from agents.bayesian import BayesianAgent  # torch and botorch only when needed

        return BayesianAgent.restore(dict(state))
    raise ValueError(f"unknown agent kind {kind!r} in checkpoint; expected random, sobol or bayesian")
