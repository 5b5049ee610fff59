"""The input warping reaches the space's bounds: a design on a bound is predicted from the trials near it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from agents.bayesian import BayesianAgent
from agents.bayesian.model import WARP_MIN_CONCENTRATION, HyperparameterStore, fit_gp
from agents.checkpoint import restore_agent
from agents.space import RecipeSpace


def rising_to_the_bound(n: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Trials with x0 ≤ 0.9 of a response that rises ever faster towards x0 = 1 (as a recipe's pressure)."""
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.random((n, 3)) * np.array([0.9, 1.0, 1.0]))
    y = torch.exp(4 * (X[:, 0] - 1)) + 0.3 * torch.sin(6 * X[:, 1]) + 0.01 * torch.as_tensor(rng.standard_normal(n))
    return X, y


def mean_and_sd_at(gp: torch.nn.Module, x0: float) -> tuple[float, float]:
    with torch.no_grad():
        posterior = gp.posterior(torch.tensor([[x0, 0.5, 0.5]], dtype=torch.float64))
    return float(posterior.mean), float(posterior.variance.sqrt())


@pytest.mark.parametrize("to_bounds", [True, False])
def test_the_warped_gp_extrapolates_a_rise_to_the_bound_only_when_its_warp_reaches_it(to_bounds: bool) -> None:
    X, y = rising_to_the_bound()
    torch.manual_seed(0)
    gp, _ = fit_gp("y", X, y, HyperparameterStore(), (150, 30), warp=True, warp_to_bounds=to_bounds)
    warp = gp.input_transform["warp"]
    concentrations = torch.cat([warp.concentration0, warp.concentration1]).detach()
    inside, bound = mean_and_sd_at(gp, 0.9), mean_and_sd_at(gp, 1.0)
    truth_rise = float(np.exp(0.0) - np.exp(-0.4))  # 0.33 from x0 = 0.9 to the bound
    if to_bounds:
        assert float(concentrations.min()) >= WARP_MIN_CONCENTRATION - 1e-9
        assert bound[0] - inside[0] > truth_rise / 3  # it follows the trend past the last trial
        assert bound[1] < 0.1
    else:
        # botorch's default: the data's range is warped and clamped; past it, nothing changes
        assert float(concentrations.min()) < 1.0
        assert bound == pytest.approx(inside, abs=1e-9)


def test_a_checkpoint_from_before_the_bounded_warp_resumes_with_botorchs() -> None:
    agent = BayesianAgent(RecipeSpace(), seed=0)
    state = agent.checkpoint()
    assert state["config"]["settings"]["warp_to_bounds"] is True
    del state["config"]["settings"]["warp_to_bounds"]
    assert restore_agent(state).settings.warp_to_bounds is False
    with pytest.raises(ValueError, match="warp_to_bounds must be true or false"):
        BayesianAgent(RecipeSpace(), seed=0, settings={"warp_to_bounds": 1})
