"""The Cholesky marginal likelihood is gpytorch's, value and gradient, for every GP the agent fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.models import SingleTaskGP
from botorch.optim.closures.model_closures import get_loss_closure_with_grads
from botorch.optim.utils import get_parameters
from gpytorch.kernels import MaternKernel
from gpytorch.mlls import ExactMarginalLogLikelihood

from agents.bayesian.likelihood import CholeskyExactMLL
from agents.bayesian.model import FEASIBILITY_MIN_LENGTHSCALE, make_gp
from agents.space import RecipeSpace
from tests.agents.conftest import toy_trapped_field_t

SPACE = RecipeSpace()


def data(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    designs = SPACE.from_unit(rng.random((n, SPACE.unit_dim)))
    X = torch.as_tensor(SPACE.encode(designs), dtype=torch.float64)
    return X, torch.tensor([toy_trapped_field_t(d) for d in designs], dtype=torch.float64)


def loss_and_gradient(mll: ExactMarginalLogLikelihood) -> tuple[float, list[torch.Tensor]]:
    mll.train()
    value, grads = get_loss_closure_with_grads(mll, get_parameters(mll, requires_grad=True))()
    return float(value.detach()), [g.clone() if g is not None else torch.zeros(()) for g in grads]


@pytest.mark.parametrize(
    "kind", ["features and warping", "plain", "feasibility (lengthscale floor)", "hyperparameters moved"]
)
def test_value_and_gradient_equal_gpytorchs(kind: str) -> None:
    X, y = data(60, seed=1)
    if kind == "features and warping":
        gp = make_gp(X, y, features=SPACE.model_features_torch, warp=True)
    elif kind == "plain":
        gp = make_gp(X, y)
    elif kind == "feasibility (lengthscale floor)":
        gp = make_gp(X, (y > y.median()).double(), min_lengthscale=FEASIBILITY_MIN_LENGTHSCALE)
    else:
        gp = make_gp(X, y, features=SPACE.model_features_torch, warp=True)
        with torch.no_grad():
            for p in gp.parameters():
                p.add_(0.3 * torch.randn_like(p, generator=torch.Generator().manual_seed(0)))
    reference, reference_grads = loss_and_gradient(ExactMarginalLogLikelihood(gp.likelihood, gp))
    value, grads = loss_and_gradient(CholeskyExactMLL(gp.likelihood, gp))
    assert value == pytest.approx(reference, rel=1e-10, abs=1e-10)
    assert len(grads) == len(reference_grads) >= 3
    for g, r in zip(grads, reference_grads, strict=True):
        assert torch.allclose(g, r, atol=1e-9, rtol=1e-8)


def test_other_gps_are_refused() -> None:
    X = torch.rand(10, 2, dtype=torch.float64)
    gp = SingleTaskGP(X, X.sum(-1, keepdim=True), covar_module=MaternKernel(ard_num_dims=2))
    with pytest.raises(TypeError, match="cannot compute"):
        CholeskyExactMLL(gp.likelihood, gp)
