"""The balance probe (`AcquisitionSettings.balance_probe_after`): a stalled incumbent's K excess set by its XRD."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from agents.bayesian import AcquisitionSettings, BayesianAgent
from agents.space import K_EXCESS_STEP, RecipeSpace
from controller.phase_balance import K_BALANCE_KEY
from tests.agents.conftest import FAST, design

AFTER = 3
SETTINGS = dataclasses.replace(FAST, balance_probe_after=AFTER, route_probe_after=0)


def recipe(**changes: Any) -> dict[str, Any]:
    base = {
        "mill_rpm": 560.0,
        "milling_time_h": 2.0,
        "ball_to_powder_ratio": 10.0,
        "k_excess": 0.04,
        "route": "sps",
        "dwell_temperature_c": 700.0,
        "dwell_time_h": 1.0,
        "pressure_mpa": 80.0,
        "ramp_rate_c_per_min": 80.0,
    }
    return {**base, **changes}


def measured(point: dict[str, Any], field_t: float, balance: float | None) -> dict[str, Any]:
    extra = {} if balance is None else {K_BALANCE_KEY: balance}
    return {**point, "trapped_field_t": field_t, "tc_k": 38.0, **extra}


def stalled(
    balance: float | None,
    *,
    k_excess: float = 0.04,
    stood: int = AFTER,
    space: RecipeSpace | None = None,
    settings: AcquisitionSettings = SETTINGS,
) -> BayesianAgent:
    """A poor start, the incumbent (1.5 T, reading `balance`), then `stood` poorer trials."""
    agent = BayesianAgent(space or RecipeSpace(), seed=0, n_initial=2, settings=settings)
    start = measured(recipe(mill_rpm=250.0, dwell_temperature_c=450.0), 0.1, 0.0)
    best = measured(recipe(k_excess=k_excess), 1.5, balance)
    after = [measured(recipe(mill_rpm=400.0 + 40.0 * i, k_excess=0.08), 0.5, 0.0) for i in range(stood)]
    agent.ingest([start, best, *after])
    return agent


@pytest.mark.parametrize(("balance", "step"), [(-4.3, K_EXCESS_STEP), (5.1, -K_EXCESS_STEP)])
def test_a_stalled_incumbent_is_tried_with_its_k_excess_corrected_once(balance: float, step: float) -> None:
    """FeAs and no KFe2As2 (negative balance): more K; KFe2As2 (positive): less."""
    agent = stalled(balance)
    (point,) = agent.suggest(1)
    assert agent.last_info["balance_probe"] == pytest.approx(0.04 + step) == point["k_excess"]
    assert design(point) == recipe(k_excess=point["k_excess"])  # every other setting is the incumbent's
    agent.ingest([measured(point, 1.2, 0.0)])
    agent.suggest(1)  # the same incumbent: not again
    assert "balance_probe" not in agent.last_info and agent.last_info["bayesian"] == 1


@pytest.mark.parametrize(
    "agent",
    [
        pytest.param(lambda: stalled(-2.9), id="below the XRD's detection limit"),
        pytest.param(lambda: stalled(-4.3, stood=AFTER - 1), id="incumbent too recent"),
        pytest.param(lambda: stalled(4.3, k_excess=0.0), id="on the bound it would cross"),
        pytest.param(lambda: stalled(None), id="no XRD reading"),
        pytest.param(lambda: stalled(-4.3, space=RecipeSpace({"k_excess": 0.04})), id="K excess fixed"),
        pytest.param(
            lambda: stalled(-4.3, settings=dataclasses.replace(SETTINGS, balance_probe_after=0)), id="turned off"
        ),
    ],
)
def test_no_balance_probe(agent: Any) -> None:
    agent = agent()
    agent.suggest(1)
    assert "balance_probe" not in agent.last_info


def test_a_restored_agent_remembers_the_incumbents_it_probed() -> None:
    agent = stalled(-4.3)
    (point,) = agent.suggest(1)
    agent.ingest([measured(point, 1.2, 0.0)])
    restored = BayesianAgent.restore(json.loads(json.dumps(agent.checkpoint())))
    restored.suggest(1)
    assert "balance_probe" not in restored.last_info
    state = agent.checkpoint()
    del state["config"]["settings"]["balance_probe_after"]
    assert BayesianAgent.restore(state).settings.balance_probe_after == 0  # older checkpoints: no probes
