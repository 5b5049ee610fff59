"""Exact GP predictions from cached factors: the acquisition's inner loop without gpytorch's overhead.

Maximising the acquisition calls the surrogate's posterior a few hundred times per `suggest`, each on a
handful of points. Through gpytorch's lazy operators one call of a two-output `ModelListGP` costs about
as much as a fit iteration, almost all of it per-call bookkeeping. `CachedPredictive` computes the
same exact predictive distribution directly: for each fitted `SingleTaskGP` (RBF kernel, Gaussian
likelihood, `Standardize` outcome), once

    L = chol(K(X, X) + σ²I),   α = K⁻¹ (y − c)

and per call, on the transformed inputs x (the model features appended once for all outputs),

    μ(x) = c + K(x, X) α,   Σ(x) = K(x, x) − VᵀV with V = L⁻¹ K(X, x),

then undoes the outcome standardisation. Deterministic outputs (a recipe's process time) keep their
mean and have no covariance. Outputs are independent (as in a `ModelListGP`), so the posterior samples
each output from its own Cholesky factor; with the same base samples it gives the `ModelListGP`'s samples
to rounding (tests/agents/test_predictive.py), at about half the cost of a call with its gradient
(bench/agent_latency.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from botorch.models import SingleTaskGP
from botorch.models.deterministic import DeterministicModel
from botorch.models.model import Model, ModelList
from botorch.models.transforms import Standardize
from botorch.models.transforms.input import ChainedInputTransform
from botorch.posteriors.posterior import Posterior
from botorch.sampling.base import MCSampler
from botorch.sampling.get_sampler import GetSampler
from botorch.sampling.normal import SobolQMCNormalSampler
from linear_operator.utils.cholesky import psd_safe_cholesky

from agents.bayesian.likelihood import noisy_kernel_matrix, supported
from agents.bayesian.model import AppendModelFeatures, Features


class IndependentOutputsPosterior(Posterior):
    """Joint normal over n points for each of m independent outputs (none, for deterministic ones).

    mean: (..., n, m); covariance: (..., m, n, n), ignored for the outputs not in `stochastic`.
    """

    def __init__(self, mean: torch.Tensor, covariance: torch.Tensor, stochastic: Sequence[int]) -> None:
        self._mean = mean
        self.covariance = covariance
        self.stochastic = list(stochastic)

    @property
    def device(self) -> torch.device:
        return self._mean.device

    @property
    def dtype(self) -> torch.dtype:
        return self._mean.dtype

    @property
    def mean(self) -> torch.Tensor:
        return self._mean

    @property
    def variance(self) -> torch.Tensor:
        return self.covariance.diagonal(dim1=-2, dim2=-1).transpose(-1, -2)

    @property
    def batch_shape(self) -> torch.Size:
        return self._mean.shape[:-2]

    @property
    def base_sample_shape(self) -> torch.Size:
        return self._mean.shape

    @property
    def batch_range(self) -> tuple[int, int]:
        return (0, -2)

    def _extended_shape(self, sample_shape: torch.Size = torch.Size()) -> torch.Size:  # noqa: B008
        return sample_shape + self._mean.shape

    def rsample_from_base_samples(self, sample_shape: torch.Size, base_samples: torch.Tensor) -> torch.Tensor:
        """mean + L·ε per stochastic output; base_samples: sample_shape × (..., n, m)."""
        if base_samples.shape[: len(sample_shape)] != sample_shape:
            raise RuntimeError(
                f"sample_shape {tuple(sample_shape)} disagrees with base samples {tuple(base_samples.shape)}"
            )
        index = self.stochastic
        if not index:
            return self._mean.expand(base_samples.shape)
        scale_tril = psd_safe_cholesky(self.covariance[..., index, :, :])  # (B..., k, n, n)
        # the samples go last, so that one matmul per factor serves all of them (no copy of L per sample)
        n_batch = self._mean.dim() - 2
        eps = base_samples[..., index].reshape(-1, *base_samples.shape[len(sample_shape) :][:-1], len(index))
        eps = eps.permute(*range(1, n_batch + 1), n_batch + 2, n_batch + 1, 0)  # (B..., k, n, S)
        noise = (scale_tril @ eps).permute(-1, *range(n_batch), -2, -3)  # (S, B..., n, k)
        noise = noise.reshape(*sample_shape, *noise.shape[1:])
        if len(index) == self._mean.shape[-1]:
            return self._mean + noise
        full = torch.zeros(base_samples.shape, dtype=noise.dtype, device=noise.device)
        full = full.index_add(-1, torch.tensor(index, device=noise.device), noise)
        return self._mean + full

    def rsample(self, sample_shape: torch.Size | None = None) -> torch.Tensor:
        shape = sample_shape if sample_shape is not None else torch.Size([1])
        base = torch.randn(shape + self.base_sample_shape, dtype=self.dtype, device=self.device)
        return self.rsample_from_base_samples(shape, base)


@GetSampler.register(IndependentOutputsPosterior)
def _independent_outputs_sampler(
    posterior: IndependentOutputsPosterior, sample_shape: torch.Size, *, seed: int | None = None
) -> MCSampler:
    return SobolQMCNormalSampler(sample_shape=sample_shape, seed=seed)


class _CachedGP:
    """One fitted GP's predictive distribution from its Cholesky factor (natural outcome units)."""

    def __init__(self, gp: SingleTaskGP) -> None:
        gp.eval()
        self.gp = gp
        transform = getattr(gp, "input_transform", None)
        self.steps: list[torch.nn.Module] = []
        self.features: Features | None = None
        if isinstance(transform, ChainedInputTransform):
            steps = list(transform.values())
            if steps and isinstance(steps[0], AppendModelFeatures):
                self.features = steps[0].features
                steps = steps[1:]
            self.steps = steps
        elif transform is not None:
            self.steps = [transform]
        with torch.no_grad():
            X = gp.train_inputs[0]
            self.scale_tril = psd_safe_cholesky(noisy_kernel_matrix(gp, X))
            self.constant = gp.mean_module.constant.detach().reshape(())
            residual = (gp.train_targets - self.constant).unsqueeze(-1)
            self.alpha = torch.cholesky_solve(residual, self.scale_tril).squeeze(-1)
            self.X_train = X.detach()
            outcome: Standardize = gp.outcome_transform  # type: ignore[assignment]
            self.y_mean = outcome.means.detach().reshape(())
            self.y_std = outcome.stdvs.detach().reshape(())

    def transform(self, X: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        if self.features is not None and features is not None:
            X = torch.cat([X, features.to(X)], dim=-1)
        for step in self.steps:
            X = step(X)
        return X

    def predict(self, X_model: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (..., n) and covariance (..., n, n) at inputs already transformed for this GP."""
        kernel = self.gp.covar_module
        cross = kernel.forward(X_model, self.X_train)  # (..., n, N)
        mean = self.constant + cross @ self.alpha
        # one triangular solve for all points of all batches (a broadcast batched solve is ~10x slower)
        flat = cross.reshape(-1, cross.shape[-1])  # (B·n, N)
        V = torch.linalg.solve_triangular(self.scale_tril, flat.T, upper=False).T.reshape(cross.shape)
        covariance = kernel.forward(X_model, X_model) - V @ V.transpose(-1, -2)
        return mean * self.y_std + self.y_mean, covariance * self.y_std**2


class CachedPredictive(Model):
    """The posterior of independent single-output models (fitted GPs or deterministic), output by output."""

    def __init__(self, models: Sequence[Model]) -> None:
        super().__init__()
        self.models = list(models)  # the surrogate's own models, for callers that want one of them
        self._outputs: list[_CachedGP | DeterministicModel] = []
        for m in models:
            if isinstance(m, DeterministicModel) and m.num_outputs == 1:
                self._outputs.append(m)
            elif supported(m):
                self._outputs.append(_CachedGP(m))  # type: ignore[arg-type]
            else:
                raise TypeError(f"CachedPredictive cannot predict {type(m).__name__}")
        shared = [o.features for o in self._outputs if isinstance(o, _CachedGP) and o.features is not None]
        if any(f != shared[0] for f in shared):
            raise TypeError("CachedPredictive needs one model-feature function shared by all GPs")
        self._features = shared[0] if shared else None
        self._stochastic = [i for i, o in enumerate(self._outputs) if isinstance(o, _CachedGP)]

    @property
    def num_outputs(self) -> int:
        return len(self._outputs)

    def posterior(  # type: ignore[override]
        self,
        X: torch.Tensor,
        output_indices: list[int] | None = None,
        observation_noise: bool | torch.Tensor = False,
        posterior_transform: object = None,
        **kwargs: object,
    ) -> IndependentOutputsPosterior:
        if output_indices is not None or observation_noise is not False or posterior_transform is not None:
            raise NotImplementedError("CachedPredictive predicts all outputs, without observation noise")
        features = self._features(X) if self._features is not None else None
        n = X.shape[-2]
        means: list[torch.Tensor] = []
        covariances: list[torch.Tensor] = []
        for output in self._outputs:
            if isinstance(output, _CachedGP):
                mean, covariance = output.predict(output.transform(X, features))
            else:
                mean = output(X).squeeze(-1)
                covariance = torch.zeros(*mean.shape, n, dtype=mean.dtype, device=mean.device)
            means.append(mean)
            covariances.append(covariance)
        return IndependentOutputsPosterior(torch.stack(means, -1), torch.stack(covariances, -3), self._stochastic)


def cached_predictive(model: Model) -> Model:
    """`CachedPredictive` over a model list's members when every one is supported, else `model` itself."""
    if isinstance(model, ModelList):
        members = list(model.models)
        if all(supported(m) or (isinstance(m, DeterministicModel) and m.num_outputs == 1) for m in members):
            return CachedPredictive(members)
    return model
