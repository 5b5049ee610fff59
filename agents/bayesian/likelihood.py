"""The exact marginal log likelihood of a GP fit, computed directly from one Cholesky factor.

A fit evaluates the likelihood and its gradient 30–150 times. gpytorch's `ExactMarginalLogLikelihood`
builds lazy operators for it and botorch's loss closure transforms (warps) the training inputs twice per
evaluation; at the agent's sizes (a few hundred points) that bookkeeping costs more than the algebra.
`CholeskyExactMLL` is the same quantity,

    ℓ(θ) = ( −½ rᵀK⁻¹r − ½ log|K| − n/2 log 2π + Σ log p(priors) ) / n,   K = k(X, X) + σ²I, r = y − c,

for the GPs `supported` says it can do (a `SingleTaskGP` with an RBF kernel, a Gaussian likelihood with
one noise level and a constant mean), and botorch's fitting uses it through `compute_custom_loss`.
The Gaussian term's gradient is the textbook one, ∂/∂K = ½(ααᵀ − K⁻¹) with α = K⁻¹r, from one
`cholesky_inverse`, which costs less than autograd through the factorisation (the fit's share of a
decision: `bench/agent_latency.py`). tests/agents/test_likelihood.py checks value and gradient against gpytorch's.
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


def noisy_kernel_matrix(gp: SingleTaskGP, X: torch.Tensor) -> torch.Tensor:
    """K = k(X, X) + σ²I of a `supported` GP at inputs already transformed for it."""
    noise = gp.likelihood.noise.reshape(())
    return gp.covar_module.forward(X, X) + noise * torch.eye(X.shape[-2], dtype=X.dtype, device=X.device)


class _GaussianLogDensity(torch.autograd.Function):
    """log N(r; 0, K) without the 2π term, with the closed-form gradient in K and r."""

    @staticmethod
    def forward(ctx: Any, K: torch.Tensor, residual: torch.Tensor) -> torch.Tensor:
        scale_tril = psd_safe_cholesky(K)
        alpha = torch.cholesky_solve(residual.unsqueeze(-1), scale_tril).squeeze(-1)
        ctx.save_for_backward(scale_tril, alpha)
        return -0.5 * (residual @ alpha) - scale_tril.diagonal().log().sum()

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scale_tril, alpha = ctx.saved_tensors
        K_inverse = torch.cholesky_inverse(scale_tril)
        return 0.5 * grad * (torch.outer(alpha, alpha) - K_inverse), -grad * alpha


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
        residual = y - model.mean_module(X)
        log_likelihood = _GaussianLogDensity.apply(noisy_kernel_matrix(model, X), residual)
        log_likelihood = log_likelihood - 0.5 * n * math.log(2 * math.pi)
        for _, module, prior, closure, _ in model.named_priors():
            log_likelihood = log_likelihood + prior.log_prob(closure(module)).sum()
        return log_likelihood / n

    def compute_custom_loss(self, **kwargs: Any) -> torch.Tensor:
        """The loss botorch's fit minimises (its closure factory looks for this method)."""
        return -self.value()
