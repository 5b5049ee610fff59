"""The model's view (`agents.bayesian.slices`): sweeps of the surrogate through the incumbent, and the Pareto set."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from agents.bayesian import AcquisitionSettings, BayesianAgent
from agents.bayesian.slices import ModelViewError, model_view, pareto_view
from agents.box_space import BoxSpace
from agents.space import RecipeSpace

SMALL = AcquisitionSettings(raw_samples=64, num_restarts=2, maxiter=10, mc_samples=64)


def cost(x: float) -> float:
    """A known 1-D function to minimise: minimum 0.2 at x = 1.3."""
    return 0.2 + (x - 1.3) ** 2 - 0.3 * math.sin(4 * x)


def one_d_agent(xs: list[float]) -> BayesianAgent:
    agent = BayesianAgent(
        BoxSpace({"x": (0.0, 2.0)}), seed=1, n_initial=2, objective="y", direction="min", constraints=(),
        settings=SMALL,
    )  # fmt: skip
    agent.ingest([{"x": x, "y": cost(x)} for x in xs])
    return agent


def test_the_mean_tracks_a_known_function_and_sigma_shrinks_at_the_data() -> None:
    observed = [0.1, 0.2, 0.3, 0.4, 1.3, 1.4, 1.5, 1.6]  # two clusters on the 41-point grid, a gap between
    agent = one_d_agent(observed)
    before = json.dumps(agent.checkpoint(), sort_keys=True)
    view = model_view(agent, points=41)
    assert json.dumps(agent.checkpoint(), sort_keys=True) == before  # the agent (RNG, hyperparameters) untouched

    (axis,) = view["axes"]
    x, mean, sd = np.array(axis["x"]), np.array(axis["mean"]), np.array(axis["sd"])
    assert axis["name"] == "x" and len(x) == 41 and np.allclose(x, np.linspace(0, 2, 41))
    assert not axis["log_scale"]
    truth = np.array([cost(v) for v in x])
    at_data = np.isin(np.round(x, 6), np.round(observed, 6))
    assert at_data.sum() == len(observed)
    # natural units and the right sign (a minimised objective is not shown negated): the mean goes
    # through the data, and the truth stays within 3 σ over the whole observed range, gap included
    assert np.max(np.abs(mean[at_data] - truth[at_data])) < 0.03, np.c_[x, mean, truth][at_data]
    observed_range = (x >= 0.1) & (x <= 1.6)
    assert np.all(np.abs(mean - truth)[observed_range] < 3 * sd[observed_range]), np.c_[x, mean, truth, sd]
    gap = np.argmin(np.abs(x - 0.85))
    assert sd[at_data].max() < 0.25 * sd[gap]  # σ shrinks at the observations
    assert sd[-1] > 5 * sd[at_data].max()  # and grows beyond the last one
    # the incumbent is the lowest observed cost
    best = min(observed, key=cost)
    assert view["incumbent"]["params"] == {"x": best} and axis["incumbent_x"] == best
    assert view["incumbent"]["feasible"] is True and view["incumbent"]["value"] == pytest.approx(cost(best))
    assert view["objective"] == {"name": "y", "direction": "min"} and view["successes"] == len(observed)
    assert view["acquisition"] == {"name": "qLogNEI", "log": True}
    acq = np.array([np.nan if a is None else a for a in axis["acquisition"]])
    assert len(acq) == 41 and np.isfinite(acq).sum() >= 30
    # improvement is worth looking for in the gap and beyond the best, not on the high-cost cluster
    assert x[np.nanargmax(acq)] > 0.4 and np.nanmax(acq[x <= 0.4]) < np.nanmax(acq) - 5


def test_no_model_before_two_successes() -> None:
    agent = one_d_agent([0.5])
    agent.ingest([{"x": 1.0, "failed": True, "reason": "cracked"}])
    with pytest.raises(ModelViewError, match="2 successful observations; this campaign has 1"):
        model_view(agent)


def test_a_recipe_space_sweeps_its_free_axes_and_holds_what_the_route_pins() -> None:
    space = RecipeSpace(fixed={"ball_to_powder_ratio": 10.0, "k_excess": 0.03}, routes=["tube", "hip"])
    agent = BayesianAgent(space, seed=2, n_initial=4, constraints=(("tc_k", ">=", 30.0),), settings=SMALL)
    rng = np.random.default_rng(0)
    observations = []
    for i in range(7):
        route = "tube" if i % 2 == 0 else "hip"
        recipe = {
            "mill_rpm": 300.0 + 60 * i, "milling_time_h": 0.5 * 1.6**i, "ball_to_powder_ratio": 10.0,
            "k_excess": 0.03, "route": route, "dwell_temperature_c": 450.0 + 80 * i, "dwell_time_h": 0.2 * 1.8**i,
            "pressure_mpa": 0.0 if route == "tube" else 20.0 * i, "ramp_rate_c_per_min": 2.0 + 2 * i,
        }  # fmt: skip
        if i == 6:
            observations.append({**recipe, "failed": True, "reason": "cracked"})
            continue
        # hotter is better, and the tube beats HIP here: the incumbent is the hottest tube recipe (i = 4)
        field = 1.0 + (recipe["dwell_temperature_c"] - 400) / 600 + (0.5 if route == "tube" else 0.0)
        observations.append({**recipe, "trapped_field_t": field + 0.01 * rng.standard_normal(), "tc_k": 31.0 + i})
    agent.ingest(observations)
    before = json.dumps(agent.checkpoint(), sort_keys=True)
    view = model_view(agent, points=12)
    assert json.dumps(agent.checkpoint(), sort_keys=True) == before
    assert view["incumbent"]["params"]["route"] == "tube" and view["incumbent"]["params"]["dwell_temperature_c"] == 770
    names = [a["name"] for a in view["axes"]]
    assert names == ["mill_rpm", "milling_time_h", "dwell_temperature_c", "dwell_time_h", "ramp_rate_c_per_min"]
    assert view["held"] == [{"name": "pressure_mpa", "value": 0.0}]  # a tube furnace has no pressure to sweep
    by_name = {a["name"]: a for a in view["axes"]}
    assert by_name["milling_time_h"]["log_scale"] and not by_name["mill_rpm"]["log_scale"]
    assert by_name["dwell_temperature_c"]["x"][0] == 400.0 and by_name["dwell_temperature_c"]["x"][-1] == 1000.0
    assert view["failures"] == 1 and "feasibility" in view["fit"]
    for axis in view["axes"]:
        assert min(axis["x"]) <= axis["incumbent_x"] <= max(axis["x"])
        assert all(s is not None and s >= 0 for s in axis["sd"])
    # the trapped field rises with the dwell temperature: so does the model's mean along that axis
    mean = by_name["dwell_temperature_c"]["mean"]
    assert mean[-1] > mean[0]


def test_pareto_view_marks_the_non_dominated_feasible_points() -> None:
    agent = BayesianAgent(
        BoxSpace({"x": (0.0, 1.0)}), seed=0, objective="a", direction="max", constraints=(("c", ">=", 0.0),),
        mode="multi", second_objective=("b", "min"), settings=SMALL,
    )  # fmt: skip
    rows = [  # (a ↑, b ↓, c ≥ 0)
        (1.0, 5.0, 1.0),  # front
        (2.0, 6.0, 1.0),  # front
        (1.5, 7.0, 1.0),  # dominated by (2, 6)
        (3.0, 1.0, -1.0),  # would dominate all, but infeasible
        (0.5, 4.0, 1.0),  # front
    ]
    agent.ingest([{"x": i / 10, "a": a, "b": b, "c": c} for i, (a, b, c) in enumerate(rows)])
    view = pareto_view(agent)
    assert [o["name"] for o in view["objectives"]] == ["a", "b"]
    got = {(p["a"], p["b"]): (p["front"], p["feasible"]) for p in view["points"]}
    assert got == {
        (1.0, 5.0): (True, True),
        (2.0, 6.0): (True, True),
        (1.5, 7.0): (False, True),
        (3.0, 1.0): (False, False),
        (0.5, 4.0): (True, True),
    }
    with pytest.raises(ModelViewError, match="multi-objective"):
        pareto_view(one_d_agent([0.2, 0.4]))
