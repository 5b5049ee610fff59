"""The route probe (`AcquisitionSettings.route_probe_after`): the incumbent's settings tried on other routes."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from agents.bayesian import AcquisitionSettings, BayesianAgent
from agents.bayesian.agent import ROUTE_PROBE_DISTANCE
from agents.space import RecipeSpace
from tests.agents.conftest import FAST, design, observe_recipes

PROBE_AFTER = 3
SETTINGS = dataclasses.replace(FAST, route_probe_after=PROBE_AFTER)
CONTINUOUS = ("mill_rpm", "milling_time_h", "ball_to_powder_ratio", "k_excess", "dwell_temperature_c", "dwell_time_h")


def recipe(route: str, **changes: Any) -> dict[str, Any]:
    base = {
        "mill_rpm": 560.0,
        "milling_time_h": 2.0,
        "ball_to_powder_ratio": 10.0,
        "k_excess": 0.04,
        "route": route,
        "dwell_temperature_c": 700.0,
        "dwell_time_h": 1.0,
        "pressure_mpa": {"tube": 0.0, "hip": 150.0, "sps": 80.0}[route],
        "ramp_rate_c_per_min": 80.0 if route == "sps" else 10.0,
    }
    return {**base, **changes}


def settled_on_hip(settings: AcquisitionSettings = SETTINGS) -> BayesianAgent:
    """Two initial designs far from the incumbent (tube, sps), then `PROBE_AFTER` trials on HIP near it."""
    agent = BayesianAgent(RecipeSpace(), seed=0, n_initial=2, settings=settings)
    far = {"mill_rpm": 250.0, "milling_time_h": 20.0, "dwell_temperature_c": 450.0, "k_excess": 0.09}
    initial = [recipe("tube", **far), recipe("sps", **far)]
    hip = [recipe("hip", mill_rpm=520.0 + 20.0 * i, dwell_time_h=0.8 + 0.1 * i) for i in range(PROBE_AFTER)]
    agent.ingest(observe_recipes(initial + hip))
    return agent


def test_a_campaign_settled_on_one_route_tries_its_best_recipe_on_the_others_once_each() -> None:
    agent = settled_on_hip()
    best = design(agent.get_best_points()[0])
    assert best["route"] == "hip"
    probes = []
    for _ in range(2):
        (point,) = agent.suggest(1)
        probes.append(point)
        assert agent.last_info["route_probe"] == point["route"]
        agent.ingest(observe_recipes([point]))
    assert [p["route"] for p in probes] == ["tube", "sps"]
    for p in probes:
        assert all(p[k] == pytest.approx(best[k]) for k in CONTINUOUS)
    assert probes[0]["pressure_mpa"] == 0.0  # a tube has no pressure
    # the route-specific axes keep their place in the route's own range: 150 of HIP's 200 MPa is 75 of SPS's 100
    assert probes[1]["pressure_mpa"] == pytest.approx(75.0)
    (point,) = agent.suggest(1)  # every route probed: back to the acquisition
    assert "route_probe" not in agent.last_info
    assert agent.last_info["bayesian"] == 1


def test_no_probe_before_the_campaign_has_settled() -> None:
    agent = settled_on_hip()
    agent.ingest(observe_recipes([recipe("sps", mill_rpm=300.0)]))  # the last trial left HIP
    assert design(agent.get_best_points()[0])["route"] == "hip"
    agent.suggest(1)
    assert "route_probe" not in agent.last_info


@pytest.mark.parametrize(("offset_c", "probed"), [(60.0, "sps"), (180.0, "tube")])
def test_a_route_already_tried_near_the_incumbent_is_not_probed(offset_c: float, probed: str) -> None:
    """A tube recipe 0.1 of the temperature axis from the incumbent counts as tried (≤ 0.2), one 0.3 away not."""
    best = design(settled_on_hip().get_best_points()[0])
    tried = {k: best[k] for k in CONTINUOUS}
    tried["dwell_temperature_c"] -= offset_c
    assert offset_c / 600.0 < ROUTE_PROBE_DISTANCE or probed == "tube"
    # injected among the initial designs, before the HIP trials: the last trials stay on HIP
    agent = BayesianAgent(RecipeSpace(), seed=0, n_initial=3, settings=SETTINGS)
    first = [recipe("tube", mill_rpm=250.0), recipe("sps", mill_rpm=250.0), recipe("tube", **tried)]
    hip = [recipe("hip", mill_rpm=520.0 + 20.0 * i, dwell_time_h=0.8 + 0.1 * i) for i in range(PROBE_AFTER)]
    agent.ingest(observe_recipes(first + hip))
    (point,) = agent.suggest(1)
    assert agent.last_info["route_probe"] == probed == point["route"]


def test_the_probe_can_be_turned_off() -> None:
    agent = settled_on_hip(dataclasses.replace(FAST, route_probe_after=0))
    agent.suggest(1)
    assert "route_probe" not in agent.last_info


def test_a_restored_agent_remembers_the_routes_it_probed() -> None:
    agent = settled_on_hip()
    (point,) = agent.suggest(1)
    agent.ingest(observe_recipes([point]))
    restored = BayesianAgent.restore(json.loads(json.dumps(agent.checkpoint())))
    (again,) = restored.suggest(1)
    assert point["route"] == "tube" and again["route"] == "sps"
    assert restored.last_info["route_probe"] == "sps"
    state = agent.checkpoint()
    del state["config"]["settings"]["route_probe_after"]
    assert BayesianAgent.restore(state).settings.route_probe_after == 0  # older checkpoints: no probes


@pytest.mark.parametrize("name", ["route_probe_after", "balance_probe_after"])
@pytest.mark.parametrize("value", [-1, 1.5, True, "6"])
def test_a_bad_probe_setting_is_refused(name: str, value: object) -> None:
    with pytest.raises(ValueError, match=name):
        AcquisitionSettings(**{name: value})  # type: ignore[arg-type]


def test_a_probe_echoed_with_rounded_parameters_is_still_recognised() -> None:
    agent = settled_on_hip()
    (point,) = agent.suggest(1)
    echoed = {**point, "mill_rpm": point["mill_rpm"] + 0.004}  # as a lab that rounds might report it
    agent.ingest(observe_recipes([echoed]))
    agent.suggest(1)
    assert agent.last_info.get("route_probe") == "sps"
