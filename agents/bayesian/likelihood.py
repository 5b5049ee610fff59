"""The exact marginal log likelihood of a GP fit, computed directly from one Cholesky factor.

A fit evaluates the likelihood and its gradient 30–150 times. gpytorch's `ExactMarginalLogLikelihood`
builds lazy operators for it and botorch's loss closure transforms (warps) the training inputs twice per
evaluation; at the agent's sizes (a few hundred points) that bookkeeping costs more than the algebra.
`CholeskyExactMLL` is the same quantity,

    ℓ(θ) = ( −½ rᵀK⁻¹r − ½ log|K| − n/2 log 2π + Σ log p(priors) ) / n,   K = k(X, X) + σ²I, r = y − c,

for the GPs `supported` says it can do (a `SingleTaskGP` with an RBF kernel, a Gaussian likelihood with
one noise level and a constant mean), and botorch's fitting uses it through `compute_custom_loss`.
tests/agents/test_likelihood.py checks value and gradient against gpytorch's.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from botorch.models import SingleTaskGP
from botorch.models.model import Model
from botorch.models.transforms import Standardize
from gpytorch.kernels import RBFKernel
from gpytorch.likelihoods import GaussianLikelihood
from gpytorch.means import ConstantMean
from gpytorch.mlls import ExactMarginalLogLikelihood
from linear_operator.utils.cholesky import psd_safe_cholesky


def supported(gp: Model) -> bool:
    """Whether `gp` is a plain GP (one output, RBF kernel, one noise level, constant mean, standardised)."""
    return (
        isinstance(gp, SingleTaskGP)
        and gp.num_outputs == 1
        and isinstance(gp.covar_module, RBFKernel)
        and type(gp.likelihood) is GaussianLikelihood
        and isinstance(gp.mean_module, ConstantMean)
        and isinstance(getattr(gp, "outcome_transform", None), Standardize)
    )


class CholeskyExactMLL(ExactMarginalLogLikelihood):
    """gpytorch's exact marginal log likelihood per data point, priors included, for a `supported` GP."""

    def __init__(self, likelihood: GaussianLikelihood, model: SingleTaskGP) -> None:
        if not supported(model):
            raise TypeError(f"CholeskyExactMLL cannot compute the likelihood of {type(model).__name__}")
        super().__init__(likelihood, model)

    def value(self) -> torch.Tensor:
        """ℓ(θ) at the model's current hyperparameters (the model in training mode)."""
        model = self.model
        X = model.transform_inputs(model.train_inputs[0])
        y = model.train_targets
        n = y.shape[-1]
        noise = model.likelihood.noise.reshape(())
        K = model.covar_module.forward(X, X) + noise * torch.eye(n, dtype=X.dtype, device=X.device)
        scale_tril = psd_safe_cholesky(K)
        residual = (y - model.mean_module(X)).unsqueeze(-1)
        z = torch.linalg.solve_triangular(scale_tril, residual, upper=False)
        log_likelihood = -0.5 * (z.square().sum() + n * math.log(2 * math.pi)) - scale_tril.diagonal().log().sum()
        for _, module, prior, closure, _ in model.named_priors():
            log_likelihood = log_likelihood + prior.log_prob(closure(module)).sum()
        return log_likelihood / n

    def compute_custom_loss(self, **kwargs: Any) -> torch.Tensor:
        """The loss botorch's fit minimises (its closure factory looks for this method)."""
        return -self.value()
