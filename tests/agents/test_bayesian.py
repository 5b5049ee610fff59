"""The Bayesian agent optimises, uses failures and constraints, survives bad data and bad fits."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest

import agents.bayesian.agent as agent_module
import agents.bayesian.model as model_module
from agents.baselines import SobolAgent
from agents.bayesian import BayesianAgent, warm_up
from agents.outcomes import pareto_mask
from agents.space import BoxSpace, RecipeSpace, process_time_h
from controller.recipe import Recipe
from tests.agents.conftest import FAST, HARTMANN6_MAX, design, hartmann6, observe_recipes, run_loop

UNIT6 = BoxSpace({f"x{i}": (0.0, 1.0) for i in range(6)})
UNIT2 = BoxSpace({"x0": (0.0, 1.0), "x1": (0.0, 1.0)})


def best_y(agent: Any) -> float:
    return max(t.outcomes["y"] for t in agent.ledger.with_status("completed"))


def test_beats_sobol_on_hartmann6() -> None:
    """Median best after 30 evaluations (8 Sobol, then batches of 3) over 5 seeds: regret well below Sobol's."""

    def f(p: dict[str, Any]) -> dict[str, Any]:
        return {"y": hartmann6(np.array([p[f"x{i}"] for i in range(6)]))}

    bo, sobol = [], []
    for seed in range(5):
        agent = BayesianAgent(UNIT6, seed=seed, n_initial=8, objective="y", constraints=(), settings=FAST)
        run_loop(agent, f, n_evals=30, q=3)
        bo.append(best_y(agent))
        baseline = SobolAgent(UNIT6, seed=seed, objective="y", constraints=())
        run_loop(baseline, f, n_evals=30, q=3)
        sobol.append(best_y(baseline))
    regret_bo, regret_sobol = HARTMANN6_MAX - np.median(bo), HARTMANN6_MAX - np.median(sobol)
    assert regret_bo < 0.6 * regret_sobol, (bo, sobol)


def failures_among_model_suggestions(model_failures: bool, monkeypatch: pytest.MonkeyPatch) -> int:
    """Failed experiments among 10 model-based suggestions × 3 seeds, where everything with x0 > 0.6 fails
    and y is highest at x0 = 1 (the feasible optimum is on the boundary, so probing it is fair)."""
    if not model_failures:  # the ablation: drop failed trials, as Ax does
        original = BayesianAgent._observed
        monkeypatch.setattr(BayesianAgent, "_observed", lambda self: (original(self)[0], []))

    def f(p: dict[str, Any]) -> dict[str, Any]:
        if p["x0"] > 0.6:
            return {"failed": True, "reason": "sample cracked"}
        return {"y": p["x0"] + 0.3 * p["x1"]}

    failed = 0
    for seed in range(3):
        agent = BayesianAgent(UNIT2, seed=seed, n_initial=6, objective="y", constraints=(), settings=FAST)
        run_loop(agent, f, n_evals=6, q=6)
        for _ in range(10):
            (p,) = agent.suggest(1)
            outcome = f(p)
            failed += "failed" in outcome
            agent.ingest([{**p, **outcome}])
    monkeypatch.undo()
    return failed


def test_failures_are_modelled_and_the_failing_region_avoided(monkeypatch: pytest.MonkeyPatch) -> None:
    with_model = failures_among_model_suggestions(True, monkeypatch)
    dropped = failures_among_model_suggestions(False, monkeypatch)
    assert with_model <= 15 and with_model <= 0.6 * dropped, (with_model, dropped)


def test_outcome_constraint_is_learned() -> None:
    """y grows with x0 but the constraint c ≥ 30 only holds for x0 ≤ 0.5: the best point sits near the edge."""

    def f(p: dict[str, Any]) -> dict[str, Any]:
        return {"y": p["x0"] + 0.1 * p["x1"], "c": 40.0 - 20.0 * p["x0"]}

    agent = BayesianAgent(UNIT2, seed=5, n_initial=6, objective="y", constraints=[("c", ">=", 30.0)], settings=FAST)
    run_loop(agent, f, n_evals=18, q=3)
    (best,) = agent.get_best_points()
    assert best["c"] >= 30.0 and 0.4 <= best["x0"] <= 0.5
    model_based = [t for t in list(agent.ledger.trials.values())[6:]]
    feasible = sum(t.outcomes["c"] >= 30.0 - 2.0 for t in model_based)  # within 0.1 of the edge counts
    assert feasible >= 0.75 * len(model_based)


def test_injected_points_count_towards_the_initial_design() -> None:
    agent = BayesianAgent(RecipeSpace(), seed=2, n_initial=5, settings=FAST)
    recipes = RecipeSpace().from_unit(np.random.default_rng(0).random((5, 9)))
    agent.ingest(observe_recipes(recipes))  # an operator's five recipes, no _id
    assert len(agent.ledger) == 5 and all(t.injected for t in agent.ledger.trials.values())
    batch = agent.suggest(2)
    assert agent.last_info["bayesian"] == 2 and agent.last_info["fallback"] is None
    for p in batch:
        Recipe.model_validate(design(p))


def test_injected_recipe_outside_the_campaign_is_kept_but_not_modelled() -> None:
    agent = BayesianAgent(RecipeSpace({"route": "hip"}), seed=2, n_initial=3, settings=FAST)
    agent.ingest(observe_recipes(agent.suggest(3)))
    tube = RecipeSpace({"route": "tube"}).from_unit(np.full((1, 7), 0.5))[0]
    agent.ingest([{**tube, "trapped_field_t": 9.0, "tc_k": 35.0}])
    assert agent.get_best_points()[0]["route"] == "tube"  # observed, so reported
    (p,) = agent.suggest(1)
    assert p["route"] == "hip" and agent.last_info["fallback"] is None


def test_replicates_and_near_duplicates_do_not_break_the_fit(rng: np.random.Generator) -> None:
    space = RecipeSpace({"route": "hip"})
    base = space.from_unit(np.full((1, space.unit_dim), 0.4))[0]
    twins = [{**base, "mill_rpm": base["mill_rpm"] + 1e-9 * i} for i in range(6)]
    points = observe_recipes([base] * 6 + twins, rng) + observe_recipes(space.from_unit(rng.random((3, 8))), rng)
    agent = BayesianAgent(space, seed=4, n_initial=4, settings=FAST)
    agent.ingest(points)
    batch = agent.suggest(3)
    assert agent.last_info["fallback"] is None and agent.last_info["bayesian"] == 3
    assert len({p["mill_rpm"] for p in batch}) == 3


def test_a_failed_fit_falls_back(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    agent = BayesianAgent(UNIT2, seed=8, n_initial=4, objective="y", constraints=(), settings=FAST)
    run_loop(agent, lambda p: {"y": -((p["x0"] - 0.3) ** 2)}, n_evals=4, q=4)

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("fitting failed on all retries")

    monkeypatch.setattr(model_module, "fit_gpytorch_mll", broken)
    with caplog.at_level(logging.WARNING):
        first = agent.suggest(2)  # no earlier fit: space-filling designs, logged
    assert len(first) == 2 and agent.last_info["fallback"] and agent.last_info["space_filling"] == 2
    assert "space-filling" in caplog.text
    monkeypatch.undo()
    agent.suggest(1)  # a good fit: its hyperparameters are kept
    monkeypatch.setattr(model_module, "fit_gpytorch_mll", broken)
    agent.suggest(1)
    assert agent.last_info["fit"] == {"objective:y": "previous"} and agent.last_info["bayesian"] == 1


def test_an_error_in_the_acquisition_never_escapes_suggest(monkeypatch: pytest.MonkeyPatch) -> None:
    agent = BayesianAgent(RecipeSpace(), seed=9, n_initial=3, settings=FAST)
    agent.ingest(observe_recipes(agent.suggest(3)))

    def broken(*args: Any, **kwargs: Any) -> None:
        raise ValueError("NotPSDError: matrix not positive definite")

    monkeypatch.setattr(agent_module, "optimize_sequential", broken)
    batch = agent.suggest(4)
    assert len(batch) == 4 and "NotPSD" in agent.last_info["fallback"]
    for p in batch:
        Recipe.model_validate(design(p))


def test_multi_objective_returns_the_pareto_set() -> None:
    space = RecipeSpace({"route": "hip"})
    agent = BayesianAgent(space, seed=11, n_initial=6, mode="multi", settings=FAST)
    run_loop(agent, lambda p: observe_recipes([p])[0], n_evals=12, q=3)
    assert agent.last_info["fit"]["objective:process_time_h"] == "deterministic"
    assert agent.last_info["fallback"] is None and agent.last_info["bayesian"] == 3
    front = agent.get_best_points()
    assert front
    for p in front:
        assert p["process_time_h"] == pytest.approx(process_time_h(p)) and p["tc_k"] >= 30.0
    Y = np.array([[p["trapped_field_t"], -p["process_time_h"]] for p in front])
    assert pareto_mask(Y).all()  # nothing in the set dominates another member
    for t in agent.ledger.with_status("completed"):
        if t.outcomes["tc_k"] < 30.0:
            continue
        y = np.array([t.outcomes["trapped_field_t"], -process_time_h(t.params)])
        assert any(np.all(f >= y) for f in Y)  # everything feasible is dominated by (or in) the set


def test_warm_up_leaves_global_rng_alone() -> None:
    import torch

    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    seconds = warm_up(RecipeSpace({"route": "sps"}), n_points=6)
    assert seconds > 0 and torch.equal(torch.rand(3), expected)


def test_overlapping_single_thread_sections_restore_the_setting_once() -> None:
    """Two campaigns deciding at once: torch stays on one thread until both leave, then gets its setting back."""
    import threading

    import torch

    from agents.bayesian.agent import one_torch_thread

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    a_in, a_out, b_in, b_may_leave = (threading.Event() for _ in range(4))
    seen: dict[str, int] = {}

    def first() -> None:
        with one_torch_thread():
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def second() -> None:
        a_in.wait(5)
        with one_torch_thread():
            b_in.set()
            a_out.wait(5)
            seen["inside_after_first_left"] = torch.get_num_threads()
            b_may_leave.wait(5)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    try:
        for t in threads:
            t.start()
        a_out.wait(5)
        b_may_leave.set()
        for t in threads:
            t.join(10)
        assert seen["inside_after_first_left"] == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
