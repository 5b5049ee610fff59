"""Exact GP predictions from cached factors: the acquisition's inner loop without gpytorch's overhead.

Maximising the acquisition calls the surrogate's posterior a few hundred times per `suggest`, each on a
handful of points. Through gpytorch's lazy operators one call of a two-output `ModelListGP` costs about
as much as a fit iteration, almost all of it per-call bookkeeping. `CachedPredictive` computes the
same exact predictive distribution directly: for each fitted `SingleTaskGP` (RBF kernel, Gaussian
likelihood, `Standardize` outcome), once

    L = chol(K(X, X) + σ²I),   α = K⁻¹ (y − c)

and per call, on the transformed inputs x (the model features appended once for all outputs),

    μ(x) = c + K(x, X) α,   Σ(x) = K(x, x) − VᵀV with V = L⁻¹ K(X, x),

then undoes the outcome standardisation (folded into c, α and L on the plain path below). When the
kernel is a plain `RBFKernel` and the input transforms are `Normalize` and `Warp` (the agent's GPs), both
are evaluated with plain tensor operations rather than through the botorch / gpytorch modules: the
transforms as those modules do in eval mode (`Normalize`: (x − offset) / coefficient; `Warp`: its own
`Normalize`, then the Kumaraswamy CDF 1 − (1 − zᶜ¹)ᶜ⁰ of z = ε + (1 − 2ε)x clamped to [ε, 1 − ε]), then
a = (x − m) / ℓ with ℓ the lengthscales and m the training inputs' mean, so that

    k(a, b) = exp(a·b − ½‖a‖² − ½‖b‖²)   (capped at 1; b the training inputs, scaled once),
    k(a, a') = exp(−½‖a − a'‖²)          (between the points of one call, with `torch.cdist`).

Any other GP goes through its own transform and kernel modules. Deterministic outputs (a recipe's process
time) keep their mean and have no covariance. Outputs are independent (as in a `ModelListGP`), so the
posterior samples each output from its own Cholesky factor; with the same base samples it gives the
`ModelListGP`'s samples to rounding (tests/agents/test_predictive.py).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from botorch.models import SingleTaskGP
from botorch.models.deterministic import DeterministicModel
from botorch.models.model import Model, ModelList
from botorch.models.transforms import Standardize
from botorch.models.transforms.input import ChainedInputTransform, Normalize, Warp
from botorch.posteriors.posterior import Posterior
from botorch.sampling.base import MCSampler
from botorch.sampling.get_sampler import GetSampler
from botorch.sampling.normal import SobolQMCNormalSampler
from gpytorch.kernels import RBFKernel
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


class _Affine:
    """(X − offset) / coefficient, `Normalize` in eval mode (offset 0, coefficient 1 outside its indices)."""

    def __init__(self, offset: torch.Tensor, coefficient: torch.Tensor) -> None:
        self.offset = offset
        self.coefficient = coefficient

    @classmethod
    def of(cls, step: Normalize, width: int) -> _Affine:
        """The affine map of a `Normalize` on `width` inputs (its `indices`, if any, among them)."""
        offset, coefficient = step.offset.detach().reshape(-1), step.coefficient.detach().reshape(-1)
        indices = getattr(step, "indices", None)
        if indices is None:
            return cls(offset.expand(width).clone(), coefficient.expand(width).clone())
        full_offset = torch.zeros(width, dtype=offset.dtype, device=offset.device)
        full_coefficient = torch.ones(width, dtype=offset.dtype, device=offset.device)
        return cls(full_offset.index_copy(0, indices, offset), full_coefficient.index_copy(0, indices, coefficient))

    @property
    def identity(self) -> bool:
        return bool((self.offset == 0).all() and (self.coefficient == 1).all())

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        return (X - self.offset) / self.coefficient


class _Kumaraswamy:
    """`Warp` in eval mode: its own `Normalize`, then 1 − (1 − xᶜ¹)ᶜ⁰ on x ∈ [ε, 1 − ε], on its indices."""

    def __init__(self, step: Warp, width: int) -> None:
        indices = step.indices
        self.indices = None if torch.equal(indices, torch.arange(width, device=indices.device)) else indices
        normalize = step._normalize  # acts on X[..., indices]: its offset and coefficient are theirs
        inner = _Affine(normalize.offset.detach().reshape(-1), normalize.coefficient.detach().reshape(-1))
        self.normalize = None if inner.identity else inner
        self.eps = float(step._eps)
        self.c0 = step.concentration0.detach()
        self.c1 = step.concentration1.detach()

    def __call__(self, X: torch.Tensor) -> torch.Tensor:
        Y = X if self.indices is None else X[..., self.indices]
        if self.normalize is not None:
            Y = self.normalize(Y)
        Y = torch.clamp(Y * (1 - 2 * self.eps) + self.eps, self.eps, 1.0 - self.eps)
        Y = 1 - torch.pow(1 - torch.pow(Y, self.c1), self.c0)
        return Y if self.indices is None else X.index_copy(-1, self.indices, Y)


def _plain_steps(steps: Sequence[torch.nn.Module], width: int) -> list[_Affine | _Kumaraswamy] | None:
    """The input transform steps as plain-tensor maps, or None if one is of a kind not reproduced here."""
    plain: list[_Affine | _Kumaraswamy] = []
    for step in steps:
        if not (
            getattr(step, "transform_on_eval", False)
            and getattr(step, "transform_on_fantasize", False)
            and not getattr(step, "reverse", True)
            and len(getattr(step, "batch_shape", ())) == 0
        ):
            return None
        if type(step) is Normalize:
            affine = _Affine.of(step, width)
            if not affine.identity:
                plain.append(affine)
        elif type(step) is Warp:
            inner = getattr(step, "_normalize", None)
            if not (
                type(inner) is Normalize
                and inner.transform_on_eval
                and inner.transform_on_fantasize
                and not inner.reverse
                and len(inner.batch_shape) == 0
                and torch.equal(inner.indices, step.indices)
                and step.concentration0.shape == step.indices.shape == step.concentration1.shape
            ):
                return None
            plain.append(_Kumaraswamy(step, width))
        else:
            return None
    return plain


class _CachedGP:
    """One fitted GP's predictive distribution from its Cholesky factor (natural outcome units).

    With `fast` (the default), a GP whose kernel is a plain `RBFKernel` and whose input transforms are
    `Normalize` / `Warp` is predicted with plain tensor operations on inputs scaled by the lengthscales;
    any other GP (or `fast=False`) goes through its own transform and kernel modules.
    """

    def __init__(self, gp: SingleTaskGP, fast: bool = True) -> None:
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
        self.plain = self._plain(gp) if fast else None

    @property
    def fast(self) -> bool:
        """Whether this GP is predicted on the plain-tensor path."""
        return self.plain is not None

    def _plain(self, gp: SingleTaskGP) -> list[_Affine | _Kumaraswamy] | None:
        """The plain-tensor path's constants, or None if this GP needs its own modules."""
        kernel = gp.covar_module
        X = self.X_train
        if not (type(kernel) is RBFKernel and kernel.active_dims is None and len(kernel.batch_shape) == 0):
            return None
        if X.dim() != 2 or kernel.lengthscale.dim() != 2 or kernel.lengthscale.shape[-2] != 1:
            return None
        plain = _plain_steps(self.steps, X.shape[-1])
        if plain is None:
            return None
        with torch.no_grad():
            # inputs scaled by the lengthscales, centred on the training inputs' mean (less rounding in a·b)
            self.lengthscale = kernel.lengthscale.detach().reshape(-1)
            self.shift = X.mean(-2)
            train = (X - self.shift) / self.lengthscale
            self.train_half_sq = -0.5 * train.square().sum(-1)  # −½‖b‖²
            self.train_t = train.T.contiguous()
            # the outcome's units, folded into the constants
            self.alpha_natural = self.alpha * self.y_std
            self.constant_natural = self.constant * self.y_std + self.y_mean
            self.scale_tril_natural = self.scale_tril / self.y_std
            self.log_variance_scale = 2 * self.y_std.log()
        return plain

    def transform(self, X: torch.Tensor, features: torch.Tensor | None) -> torch.Tensor:
        """The inputs `predict` takes: transformed for this GP (and, on the fast path, scaled)."""
        if self.features is not None and features is not None:
            X = torch.cat([X, features.to(X)], dim=-1)
        if self.plain is None:
            for step in self.steps:
                X = step(X)
            return X
        for plain in self.plain:
            X = plain(X)
        return (X - self.shift) / self.lengthscale

    def predict(self, X_model: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean (..., n) and covariance (..., n, n) at inputs from `transform`."""
        if self.plain is not None:
            return self._predict_plain(X_model)
        kernel = self.gp.covar_module
        cross = kernel.forward(X_model, self.X_train)  # (..., n, N)
        mean = self.constant + cross @ self.alpha
        V = _solve(self.scale_tril, cross)
        covariance = kernel.forward(X_model, X_model) - V @ V.transpose(-1, -2)
        return mean * self.y_std + self.y_mean, covariance * self.y_std**2

    def _predict_plain(self, A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`predict` for an RBF kernel at scaled inputs A, with plain tensor operations."""
        # k(a, b) = exp(a·b − ½‖a‖² − ½‖b‖²), capped at 1 against rounding
        flat = A.reshape(-1, A.shape[-1])
        log_cross = torch.addmm(self.train_half_sq, flat, self.train_t).sub(
            flat.square().sum(-1, keepdim=True), alpha=0.5
        )
        cross = log_cross.clamp_max(0).exp().reshape(*A.shape[:-1], -1)  # (..., n, N)
        mean = self.constant_natural + cross @ self.alpha_natural
        V = _solve(self.scale_tril_natural, cross)
        # σ_y² k(x, x'); cdist takes the differences themselves for a few points (exact diagonal) and
        # needs no (..., n, n, D) array for many
        sq_dist = torch.cdist(A, A).square()
        prior = torch.add(self.log_variance_scale, sq_dist, alpha=-0.5).exp()
        return mean, prior - V @ V.transpose(-1, -2)


def _solve(scale_tril: torch.Tensor, cross: torch.Tensor) -> torch.Tensor:
    """L⁻¹ k(X, x) as (..., n, N): one triangular solve for all points of all batches
    (a broadcast batched solve is ~10x slower)."""
    flat = cross.reshape(-1, cross.shape[-1])  # (B·n, N)
    return torch.linalg.solve_triangular(scale_tril, flat.T, upper=False).T.reshape(cross.shape)


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
