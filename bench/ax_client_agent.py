"""Ax's `Client` (its default generation strategy on BoTorch) behind the same suggest/ingest calls.

The anchor of `bench/campaign.py`. Ax sees the agent's own unit-cube encoding of a `RecipeSpace`: one
float parameter in [0, 1] per free axis (log axes and route-relative pressure/ramp already mapped, as
`RecipeSpace` does for grainloop's agent) and the route as an unordered choice; so both optimisers search
the same space. Ax is an optional extra: `pip install -e '.[bench]'`.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from agents.space import RecipeSpace


class AxClientAgent:
    """Minimal adapter: `suggest(1)` → [recipe with "_id"], `ingest([outcome])`; one trial at a time."""

    kind = "ax"

    def __init__(self, space: RecipeSpace, *, seed: int, min_tc_k: float = 30.0) -> None:
        from ax import ChoiceParameterConfig, Client, RangeParameterConfig

        for name in list(logging.root.manager.loggerDict):  # Ax logs every trial at INFO on its own handlers
            if name.split(".")[0] in ("ax", "pyro"):
                logging.getLogger(name).setLevel(logging.ERROR)
        self.space = space
        self.client = Client(random_seed=seed)
        parameters: list[Any] = [
            RangeParameterConfig(name=f"u_{axis}", parameter_type="float", bounds=(0.0, 1.0)) for axis in space.axes
        ]
        if len(space.routes) > 1:
            parameters.append(
                ChoiceParameterConfig(name="route", parameter_type="str", values=list(space.routes), is_ordered=False)
            )
        self.client.configure_experiment(parameters=parameters, name="grainloop-bench")
        self.client.configure_optimization(objective="trapped_field_t", outcome_constraints=[f"tc_k >= {min_tc_k}"])

    def suggest(self, n: int = 1) -> list[dict[str, Any]]:
        if n != 1:
            raise ValueError("AxClientAgent proposes one trial at a time")
        ((index, params),) = self.client.get_next_trials(max_trials=1).items()
        x = np.zeros(self.space.n_features)
        x[: len(self.space.axes)] = [float(params[f"u_{axis}"]) for axis in self.space.axes]
        if self.space.cat_columns:
            x[self.space.cat_columns[self.space.routes.index(str(params["route"]))]] = 1.0
        x = self.space.project(torch.as_tensor(x)).numpy()
        return [{**self.space.decode(x[None])[0], "_id": index}]

    def ingest(self, points: list[dict[str, Any]]) -> None:
        for point in points:
            if point.get("failed"):
                self.client.mark_trial_failed(point["_id"])
            else:
                data = {"trapped_field_t": float(point["trapped_field_t"]), "tc_k": float(point["tc_k"])}
                self.client.complete_trial(point["_id"], raw_data=data)
