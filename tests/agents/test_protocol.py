"""Every agent speaks the same protocol: ids, validity, fixed parameters, pending trials, checkpoints."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from agents.baselines import RandomAgent, SobolAgent
from agents.bayesian import BayesianAgent
from agents.checkpoint import restore_agent
from agents.protocol import Optimizer
from agents.space import RecipeSpace
from controller.recipe import Recipe
from tests.agents.conftest import FAST, design, observe_recipes

FIXED = {"route": "hip", "ball_to_powder_ratio": 10}
N_INITIAL = 4


def make(kind: str, fixed: dict[str, Any] | None = None, seed: int = 7) -> Any:
    space = RecipeSpace(fixed)
    if kind == "bayesian":
        return BayesianAgent(space, seed=seed, n_initial=N_INITIAL, settings=FAST)
    return {"random": RandomAgent, "sobol": SobolAgent}[kind](space, seed=seed)


def past_initial_design(agent: Any) -> None:
    """Answer enough suggestions that a Bayesian agent proposes from its model next."""
    agent.ingest(observe_recipes(agent.suggest(N_INITIAL)))


AGENTS = ["random", "sobol", "bayesian"]


@pytest.mark.parametrize("kind", AGENTS)
def test_suggestions_are_valid_unique_and_respect_fixed(kind: str) -> None:
    agent = make(kind, FIXED)
    assert isinstance(agent, Optimizer)
    past_initial_design(agent)
    batches = [agent.suggest(3), agent.suggest(2)]  # nothing ingested in between: all pending
    points = [p for b in batches for p in b]
    ids = [p["_id"] for p in points] + [t for t in agent.ledger.trials if t not in {p["_id"] for p in points}]
    assert len(set(ids)) == len(ids) == N_INITIAL + 5
    for p in points:
        recipe = Recipe.model_validate(design(p))
        assert recipe.route == "hip" and recipe.ball_to_powder_ratio == 10.0
    # pending designs are never suggested again: no two suggestions coincide
    X = agent.space.encode([design(p) for p in points])
    distances = np.linalg.norm(X[:, None, :] - X[None, :, :], axis=-1)[np.triu_indices(len(X), 1)]
    assert distances.min() > 1e-3
    assert {t.status for t in agent.ledger.trials.values() if t.id in {p["_id"] for p in points}} == {"pending"}


@pytest.mark.parametrize("kind", AGENTS)
def test_checkpoint_restore_gives_the_same_next_suggestion(kind: str) -> None:
    agent = make(kind)
    past_initial_design(agent)
    agent.ingest(observe_recipes(agent.suggest(2)))
    pending = agent.suggest(1)  # stays pending across the checkpoint
    agent.register_failure(agent.ledger.with_status("completed")[0].id, "STEM: cracked sample")
    state = json.loads(json.dumps(agent.checkpoint()))  # really JSON
    restored = restore_agent(state)
    assert type(restored) is type(agent)
    assert [t.id for t in restored.ledger.with_status("pending")] == [pending[0]["_id"]]
    assert restored.suggest(3) == agent.suggest(3)
    assert restored.get_best_points() == agent.get_best_points()


@pytest.mark.parametrize("kind", AGENTS)
def test_ingest_answers_suggestions_and_takes_injected_points(kind: str) -> None:
    agent = make(kind)
    first = agent.suggest(2)
    # an answer may carry only the id and the outcomes
    agent.ingest([{"_id": first[0]["_id"], "trapped_field_t": 1.1, "tc_k": 36.0, "jc_a_per_cm2": 2e4}])
    injected = observe_recipes(RecipeSpace().from_unit(np.full((1, 9), 0.3)))[0]
    agent.ingest([{**injected, "trapped_field_t": 5.0}])  # an operator's recipe, no _id
    assert len(agent.ledger) == 3
    best = agent.get_best_points()
    assert len(best) == 1 and best[0]["trapped_field_t"] == 5.0 and best[0]["_id"] not in {p["_id"] for p in first}
    assert best[0]["failed"] is False and Recipe.model_validate({k: best[0][k] for k in Recipe.model_fields})
    assert agent.ledger.trials[first[0]["_id"]].outcomes["jc_a_per_cm2"] == 2e4


@pytest.mark.parametrize("kind", AGENTS)
def test_failures_and_relabelling(kind: str) -> None:
    agent = make(kind)
    a, b, c = agent.suggest(3)
    agent.register_failure(a["_id"], "furnace tripped")
    agent.ingest([{**b, "failed": True, "reason": "mill jammed"}, {**c, "trapped_field_t": 1.4, "tc_k": 37.0}])
    assert agent.ledger.trials[a["_id"]].status == "failed"
    assert agent.ledger.trials[b["_id"]].reason == "mill jammed"
    assert [p["_id"] for p in agent.get_best_points()] == [c["_id"]]
    agent.register_failure(c["_id"], "STEM: secondary phase everywhere")  # a completed trial, re-labelled
    assert agent.get_best_points() == []
    with pytest.raises(KeyError, match="unknown trial id"):
        agent.register_failure("no-such-id", "?")


@pytest.mark.parametrize("kind", AGENTS)
def test_bad_observations_are_refused_whole(kind: str) -> None:
    agent = make(kind)
    a, b = agent.suggest(2)
    good = {**a, "trapped_field_t": 1.0, "tc_k": 35.0}
    with pytest.raises(ValueError, match="outcome\\(s\\) tc_k missing"):
        agent.ingest([good, {**b, "trapped_field_t": 1.2}])
    with pytest.raises(ValueError, match="invalid recipe"):
        agent.ingest([{**design(b), "mill_rpm": 5000.0, "trapped_field_t": 1.0, "tc_k": 35.0}])
    with pytest.raises(ValueError, match="missing or not finite"):
        agent.ingest([{**b, "trapped_field_t": float("nan"), "tc_k": 35.0}])
    assert {t.status for t in agent.ledger.trials.values()} == {"pending"}  # nothing was taken


def test_outcome_constraint_decides_the_best_point() -> None:
    agent = make("sobol")
    a, b, c = agent.suggest(3)
    agent.ingest(
        [
            {**a, "trapped_field_t": 2.5, "tc_k": 25.0},  # the highest field, but Tc too low
            {**b, "trapped_field_t": 1.5, "tc_k": 34.0},
            {**c, "trapped_field_t": 1.2, "tc_k": 38.0},
        ]
    )
    assert [p["_id"] for p in agent.get_best_points()] == [b["_id"]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "both"}, "mode must be"),
        ({"direction": "up"}, "direction of trapped_field_t"),
        ({"constraints": [("tc_k", "=>", 30.0)]}, "operator"),
        ({"constraints": [("tc_k", ">=")]}, "a constraint is"),
        ({"n_initial": 0}, "n_initial"),
        ({"settings": {"raw_samples": 0}}, "raw_samples"),
        ({"settings": {"colour": 1}}, "bad settings"),
        ({"ref_point": {"trapped_field_t": 0.0}}, "only applies in mode='multi'"),
        ({"mode": "multi", "ref_point": {"trapped_field_t": 0.0}}, "exactly the objectives"),
        ({"pool": np.zeros((3, 2))}, "pool array needs shape"),
        ({"seed": "seven"}, "seed must be an integer"),
        ({"objective": "mill_rpm"}, "share a name with design fields"),
    ],
)
def test_bad_agent_configurations(kwargs: dict[str, Any], message: str) -> None:
    kwargs = {"seed": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        BayesianAgent(RecipeSpace(), **kwargs)


def test_suggest_needs_a_positive_count() -> None:
    with pytest.raises(ValueError, match="positive integer"):
        make("random").suggest(0)


def test_a_checkpoint_of_another_kind_is_refused() -> None:
    state = make("sobol").checkpoint()
    with pytest.raises(ValueError, match="cannot restore"):
        RandomAgent.restore(state)
    with pytest.raises(ValueError, match="unknown agent kind"):
        restore_agent({**state, "kind": "genetic"})


def test_a_checkpoint_from_before_input_warping_resumes_without_it() -> None:
    agent = make("bayesian")
    assert agent.input_warping is True  # a recipe space warps by default
    state = agent.checkpoint()
    assert state["config"]["settings"]["input_warping"] is None
    del state["config"]["settings"]["input_warping"]
    restored = restore_agent(state)
    assert restored.settings.input_warping is False and restored.input_warping is False
    with pytest.raises(ValueError, match="input_warping must be true, false or None"):
        BayesianAgent(RecipeSpace(), seed=0, settings={"input_warping": "yes"})
