"""Raw candidates of the acquisition optimiser drawn around the best observed designs (`local_share`)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

from agents.bayesian import AcquisitionSettings, BayesianAgent
from agents.bayesian.optimize import LOCAL_OTHER_CATEGORY, LOCAL_SIGMAS, raw_designs
from agents.space import BoxSpace, RecipeSpace
from tests.agents.conftest import FAST

RECIPES = RecipeSpace()


def test_a_share_of_the_raw_designs_lies_around_the_centres() -> None:
    centres = torch.as_tensor(
        RECIPES.encode([RECIPES.from_unit(np.full((1, RECIPES.unit_dim), u))[0] for u in (0.5, 0.9)])
    )
    raw = raw_designs(RECIPES, 1000, torch.Generator().manual_seed(0), centres, 0.5)[:, 0]
    assert raw.shape == (1000, RECIPES.n_features)
    assert float(raw.min()) >= 0.0 and float(raw.max()) <= 1.0
    k = len(RECIPES.axes)
    local, uniform = raw[:500], raw[500:]
    # a tube's pressure is pinned at 0: compare on the axes active on each design's route
    active = RECIPES.project(torch.cat([torch.ones_like(local[:, :k]), local[:, k:]], dim=1))[:, :k]
    offsets = local[:, None, :k] - centres[None, :, :k] * active[:, None, :]
    distance = offsets.norm(dim=-1).min(dim=1).values
    # σ ≤ max(LOCAL_SIGMAS) per coordinate in 8 dimensions: within 5σ·√8 of a centre, and most far closer
    assert float(distance.max()) < 5 * max(LOCAL_SIGMAS) * k**0.5
    assert float(distance.median()) < 0.35
    uniform_distance = torch.cdist(uniform[:, :k], centres[:, :k]).min(dim=1).values
    assert float(uniform_distance.median()) > 0.6
    assert torch.equal(RECIPES.project(raw), raw)  # inactive axes projected
    # clamping puts designs exactly on the bounds, where optima often are
    assert int((local[:, :k] == 1.0).sum()) > 0


def test_local_designs_keep_the_centres_route_or_try_another() -> None:
    """A share `LOCAL_OTHER_CATEGORY` of local designs redraws the route: the best recipe on another route."""
    centre = torch.as_tensor(RECIPES.encode([RECIPES.from_unit(np.full((1, RECIPES.unit_dim), 0.5))[0]]))
    k = len(RECIPES.axes)
    local = raw_designs(RECIPES, 3000, torch.Generator().manual_seed(1), centre, 1.0)[:, 0]
    route = local[:, k:].argmax(dim=1)
    own = int(centre[0, k:].argmax())
    counts = torch.bincount(route, minlength=len(RECIPES.routes)).double() / len(local)
    expected_own = 1 - LOCAL_OTHER_CATEGORY * (1 - 1 / len(RECIPES.routes))
    assert float(counts[own]) == pytest.approx(expected_own, abs=0.03)
    assert all(float(c) > 0.1 for i, c in enumerate(counts) if i != own)


def test_without_centres_or_share_the_raw_designs_are_the_uniform_ones() -> None:
    plain = raw_designs(RECIPES, 64, torch.Generator().manual_seed(3))
    centres = torch.zeros(1, RECIPES.n_features, dtype=torch.float64)
    assert torch.equal(plain, raw_designs(RECIPES, 64, torch.Generator().manual_seed(3), centres, 0.0))
    assert torch.equal(plain, raw_designs(RECIPES, 64, torch.Generator().manual_seed(3), None, 0.5))


def narrow_peak_acquisition(seed: int) -> tuple[qLogNoisyExpectedImprovement, torch.Tensor, BoxSpace]:
    """qLogNEI of a GP on a narrow peak in 8 dimensions: 40 uniform designs plus 4 near the peak."""
    space = BoxSpace({f"x{i}": (0.0, 1.0) for i in range(8)})
    rng = np.random.default_rng(seed)
    peak = rng.uniform(0.2, 0.8, 8)
    X = np.vstack([rng.random((40, 8)), peak + rng.normal(0, 0.06, (4, 8))]).clip(0, 1)
    y = np.exp(-np.sum((X - peak) ** 2, axis=1) / (2 * 0.12**2))
    Xt, yt = torch.as_tensor(X), torch.as_tensor(y).unsqueeze(-1)
    gp = SingleTaskGP(Xt, yt, outcome_transform=Standardize(1))
    fit_gpytorch_mll(ExactMarginalLogLikelihood(gp.likelihood, gp))
    acq = qLogNoisyExpectedImprovement(gp, Xt, prune_baseline=True)
    return acq, Xt[torch.argsort(yt[:, 0], descending=True)[:5]], space


def test_local_raw_designs_start_the_optimiser_on_the_high_ground() -> None:
    """The same number of raw designs, uniform against half local: the best local one scores far higher."""
    gains = []
    for seed in range(4):
        torch.manual_seed(seed)
        acq, centres, space = narrow_peak_acquisition(seed)
        best = []
        for share in (0.0, 0.5):
            raw = raw_designs(space, 128, torch.Generator().manual_seed(seed), centres, share)
            with torch.no_grad():
                best.append(float(acq(raw).max()))
        gains.append(best[1] - best[0])
    assert min(gains) > 1.0, gains  # log-acquisition units: e-fold more expected improvement


def test_the_best_feasible_designs_are_the_centres() -> None:
    space = BoxSpace({"x": (0.0, 1.0)})
    agent = BayesianAgent(space, seed=0, n_initial=2, constraints=[("c", ">=", 0.5)], settings=FAST)
    rows = [(0.1, 3.0, 0.9), (0.2, 9.0, 0.1), (0.3, 5.0, 0.7), (0.4, 1.0, 0.6), (0.5, 7.0, 0.2)]
    agent.ingest([{"x": x, "trapped_field_t": y, "c": c} for x, y, c in rows])
    successes, failures = agent._observed()
    centres = agent._best_designs(agent._training_data(successes, failures, []))
    # feasible (c ≥ 0.5) by value: 0.3, 0.1, 0.4; then the infeasible ones by value: 0.2, 0.5
    assert centres[:, 0].tolist() == pytest.approx([0.3, 0.1, 0.4, 0.2, 0.5])


def test_multi_objective_centres_are_the_feasible_pareto_set_first() -> None:
    space = BoxSpace({"x": (0.0, 1.0)})
    agent = BayesianAgent(
        space, seed=0, n_initial=2, constraints=(), mode="multi", second_objective=("cost", "min"), settings=FAST
    )
    rows = [(0.1, 3.0, 1.0), (0.2, 9.0, 5.0), (0.3, 5.0, 6.0), (0.4, 1.0, 0.5), (0.5, 8.0, 9.0)]
    agent.ingest([{"x": x, "trapped_field_t": y, "cost": c} for x, y, c in rows])
    successes, failures = agent._observed()
    centres = agent._best_designs(agent._training_data(successes, failures, []))
    # non-dominated (max y, min cost): 0.2 (9, 5), 0.1 (3, 1), 0.4 (1, 0.5); then 0.5 (8), 0.3 (5)
    assert centres[:, 0].tolist() == pytest.approx([0.2, 0.1, 0.4, 0.5, 0.3])


@pytest.mark.parametrize("share", [-0.1, 1.5, True, "half"])
def test_a_bad_local_share_is_refused(share: object) -> None:
    with pytest.raises(ValueError, match="local_share"):
        AcquisitionSettings(local_share=share)  # type: ignore[arg-type]


def test_a_checkpoint_from_before_the_option_resumes_without_it() -> None:
    agent = BayesianAgent(BoxSpace({"x": (0.0, 1.0)}), seed=0, settings=FAST)
    state = json.loads(json.dumps(agent.checkpoint()))
    del state["config"]["settings"]["local_share"]
    assert BayesianAgent.restore(state).settings.local_share == 0.0
    assert agent.settings.local_share == AcquisitionSettings().local_share
