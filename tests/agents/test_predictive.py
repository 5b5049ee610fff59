"""The cached predictive path gives the surrogate's own posterior, samples and acquisition values."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.objective import GenericMCObjective
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.model import ModelList
from botorch.models.transforms import Normalize, Standardize
from botorch.models.transforms.input import ChainedInputTransform, InputStandardize, InputTransform, Warp
from botorch.sampling import SobolQMCNormalSampler
from gpytorch.kernels import MaternKernel, RBFKernel

from agents.bayesian.model import FEASIBILITY, AppendModelFeatures, HyperparameterStore, Output, build_surrogate
from agents.bayesian.predictive import CachedPredictive, IndependentOutputsPosterior, _CachedGP, cached_predictive
from agents.space import RecipeSpace
from tests.agents.conftest import toy_trapped_field_t

SPACE = RecipeSpace()
OUTPUTS = [Output("objective:y", "y"), Output("constraint:c", "c"), FEASIBILITY]


def surrogate(n: int = 40, seed: int = 0) -> ModelList:
    """Fitted GPs of every kind the agent builds: model features + input warping, and a plain one."""
    rng = np.random.default_rng(seed)
    designs = SPACE.from_unit(rng.random((n, SPACE.unit_dim)))
    X = torch.as_tensor(SPACE.encode(designs), dtype=torch.float64)
    y = torch.tensor([toy_trapped_field_t(d) for d in designs], dtype=torch.float64)
    c = torch.tensor([d["dwell_temperature_c"] / 100.0 for d in designs], dtype=torch.float64)
    ok = torch.as_tensor(rng.random(n) > 0.2).double()
    targets = {"objective:y": y, "constraint:c": c, "feasibility:X": X, "feasibility": ok}
    model, _ = build_surrogate(SPACE, OUTPUTS, X, targets, HyperparameterStore(), (60, 30), warp=True)
    return model


def points(n: int, seed: int, batch: tuple[int, ...] = ()) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    X = SPACE.unit_to_features(rng.random((int(np.prod(batch or (1,))) * n, SPACE.unit_dim)))
    return torch.as_tensor(X, dtype=torch.float64).reshape(*batch, n, -1)


def test_posterior_mean_covariance_and_gradient_match_the_gpytorch_model() -> None:
    model = surrogate()
    assert isinstance(model, ModelListGP)
    fast = cached_predictive(model)
    assert isinstance(fast, CachedPredictive) and fast.num_outputs == 3
    X = points(5, seed=1, batch=(3,))
    X_slow, X_fast = X.clone().requires_grad_(True), X.clone().requires_grad_(True)
    for i, gp in enumerate(model.models):
        slow = gp.posterior(X_slow)
        quick = fast.posterior(X_fast)
        assert torch.allclose(quick.mean[..., i], slow.mean[..., 0], atol=1e-9, rtol=1e-9)
        assert torch.allclose(quick.covariance[..., i, :, :], slow.distribution.covariance_matrix, atol=1e-9)
        (g_slow,) = torch.autograd.grad(slow.mean.sum() + slow.variance.sum(), X_slow)
        (g_fast,) = torch.autograd.grad(quick.mean[..., i].sum() + quick.variance[..., i].sum(), X_fast)
        assert torch.allclose(g_fast, g_slow, atol=1e-8)


def gp_features(gp: _CachedGP, X: torch.Tensor) -> torch.Tensor | None:
    return gp.features(X) if gp.features is not None else None


def predictions(gp: _CachedGP, X: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mean, covariance and the gradient in X of a random linear functional of both."""
    X = X.clone().requires_grad_(True)
    mean, covariance = gp.predict(gp.transform(X, gp_features(gp, X)))
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(mean.shape, generator=generator, dtype=X.dtype)
    weights_cov = torch.randn(covariance.shape, generator=generator, dtype=X.dtype)
    (grad,) = torch.autograd.grad((weights * mean).sum() + (weights_cov * covariance).sum(), X)
    return mean.detach(), covariance.detach(), grad


def test_the_agents_gps_take_the_plain_path_and_match_their_modules() -> None:
    model = surrogate(n=60)
    kinds = [[type(step).__name__ for step in _CachedGP(gp).steps] for gp in model.models]
    assert kinds == [["Normalize", "Warp"], ["Normalize", "Warp"], ["Normalize"]]  # the feasibility GP: plain
    for gp in model.models:
        fast, slow = _CachedGP(gp), _CachedGP(gp, fast=False)
        assert fast.fast and not slow.fast
        # a baseline of many points too (cdist switches algorithm above 25)
        for X in (
            points(5, seed=1, batch=(3,)),
            points(3, seed=2, batch=(2, 2)),
            points(1, seed=3),
            points(40, seed=5),
        ):
            for a, b in zip(predictions(fast, X), predictions(slow, X), strict=True):
                assert torch.allclose(a, b, atol=1e-9, rtol=1e-9)
        with torch.no_grad():  # the raw-sample evaluation: a large batch without gradient
            X = points(4, seed=4, batch=(64,))
            features = gp_features(fast, X)
            quick, reference = fast.predict(fast.transform(X, features)), slow.predict(slow.transform(X, features))
            for a, b in zip(quick, reference, strict=True):
                assert torch.allclose(a, b, atol=1e-9, rtol=1e-9)


def toy_gp(transform: InputTransform, kernel: RBFKernel | None = None) -> SingleTaskGP:
    """An unfitted GP on 3 inputs with distinct lengthscales (and warping concentrations, if any)."""
    torch.manual_seed(0)
    X = torch.rand(15, 3, dtype=torch.float64) * torch.tensor([2.0, 1.0, 4.0], dtype=torch.float64)
    y = X.sin().sum(-1, keepdim=True)
    gp = SingleTaskGP(X, y, covar_module=kernel, input_transform=transform, outcome_transform=Standardize(1))
    with torch.no_grad():
        gp.covar_module.lengthscale = torch.tensor([[0.3, 0.7, 1.5]], dtype=torch.float64)
        for step in transform.values() if isinstance(transform, ChainedInputTransform) else [transform]:
            if isinstance(step, Warp):
                step.concentration0.copy_(torch.linspace(0.6, 1.4, len(step.indices)))
                step.concentration1.copy_(torch.linspace(1.8, 0.7, len(step.indices)))
    gp.eval()
    return gp


class SquareRootRBF(RBFKernel):
    """√k of an RBF kernel (an RBF kernel with lengthscales × √2): a kernel the plain path does not know."""

    def forward(self, x1: torch.Tensor, x2: torch.Tensor, **params: object) -> torch.Tensor:
        return super().forward(x1, x2, **params).sqrt()


BOUNDS = torch.tensor([[0.0, -1.0, 0.0], [2.0, 1.0, 4.0]], dtype=torch.float64)


@pytest.mark.filterwarnings("ignore::botorch.exceptions.warnings.InputDataWarning")  # the unnormalised toy inputs
@pytest.mark.parametrize(
    ("transform", "kernel", "plain"),
    [
        (ChainedInputTransform(n=Normalize(3, indices=[0, 2], bounds=BOUNDS), w=Warp(d=3, indices=[1, 2])), None, True),
        (Normalize(3, bounds=BOUNDS), None, True),
        (InputStandardize(3), None, False),
        (
            ChainedInputTransform(n=Normalize(3, bounds=BOUNDS), w=Warp(d=3, indices=[0, 1, 2], reverse=True)),
            None,
            False,
        ),
        (Normalize(3, bounds=BOUNDS), SquareRootRBF(ard_num_dims=3), False),
    ],
    ids=["normalize-warp-on-indices", "normalize", "standardize", "reverse-warp", "other-rbf-kernel"],
)
def test_the_plain_path_is_taken_only_for_what_it_reproduces(
    transform: InputTransform, kernel: RBFKernel | None, plain: bool
) -> None:
    gp = toy_gp(transform, kernel)
    cached = _CachedGP(gp)
    assert cached.fast is plain
    X = torch.rand(2, 4, 3, dtype=torch.float64) * torch.tensor([2.0, 1.0, 4.0], dtype=torch.float64)
    mean, covariance, _ = predictions(cached, X)
    posterior = gp.posterior(X)
    assert torch.allclose(mean, posterior.mean[..., 0], atol=1e-9, rtol=1e-9)
    assert torch.allclose(covariance, posterior.distribution.covariance_matrix, atol=1e-9)
    for a, b in zip(predictions(cached, X), predictions(_CachedGP(gp, fast=False), X), strict=True):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-9)


def test_acquisition_values_are_the_model_lists() -> None:
    """qLogNEI on the same base samples (baseline pruned the same way): the ModelListGP's values, to rounding."""
    model = surrogate(seed=2)
    baseline = points(30, seed=3)
    constraints = [lambda Z: 4.0 - Z[..., 1], lambda Z: 0.5 - Z[..., 2]]

    def acq(m: object) -> qLogNoisyExpectedImprovement:
        torch.manual_seed(0)  # the baseline pruning draws its own samples
        return qLogNoisyExpectedImprovement(
            m,  # type: ignore[arg-type]
            X_baseline=baseline,
            sampler=SobolQMCNormalSampler(torch.Size([64]), seed=5),
            objective=GenericMCObjective(lambda Z, X=None: Z[..., 0]),
            constraints=constraints,
            X_pending=points(2, seed=4),
            cache_root=False,
        )

    slow, quick = acq(model), acq(cached_predictive(model))
    for b, q in ((1, 1), (3, 1), (256, 1), (2, 3)):
        X = points(q, seed=10 + b, batch=(b,))
        with torch.no_grad():
            assert torch.allclose(quick(X), slow(X), atol=1e-8), (b, q)


def test_deterministic_outputs_keep_their_value_in_every_sample() -> None:
    space = RecipeSpace({"route": "hip"})
    rng = np.random.default_rng(0)
    designs = space.from_unit(rng.random((20, space.unit_dim)))
    X = torch.as_tensor(space.encode(designs), dtype=torch.float64)
    outputs = [Output("objective:y", "y"), Output("objective:process_time_h", "process_time_h", -1.0)]
    targets = {"objective:y": torch.tensor([toy_trapped_field_t(d) for d in designs])}
    model, how = build_surrogate(space, outputs, X, targets, HyperparameterStore(), (60, 30))
    assert how["objective:process_time_h"] == "deterministic" and not isinstance(model, ModelListGP)
    fast = cached_predictive(model)
    assert isinstance(fast, CachedPredictive)
    Xq = X[:4].unsqueeze(0)
    posterior = fast.posterior(Xq)
    samples = SobolQMCNormalSampler(torch.Size([16]), seed=0)(posterior)
    assert samples.shape == (16, 1, 4, 2)
    assert torch.allclose(samples[..., 1], posterior.mean[..., 1].expand(16, 1, 4))
    assert samples[..., 0].std(dim=0).min() > 0
    assert torch.allclose(posterior.mean[..., 0], model.models[0].posterior(Xq).mean[..., 0])


def test_samples_follow_the_covariance_for_any_sample_and_batch_shape() -> None:
    L = torch.tensor([[1.0, 0.0], [0.5, 2.0]], dtype=torch.float64)
    covariance = (L @ L.T).expand(3, 1, 2, 2)  # batch 3, one output, two points
    mean = torch.arange(6, dtype=torch.float64).reshape(3, 2, 1)
    posterior = IndependentOutputsPosterior(mean, covariance, stochastic=[0])
    base = torch.randn(2, 5, 3, 2, 1, dtype=torch.float64)
    samples = posterior.rsample_from_base_samples(torch.Size([2, 5]), base)
    expected = mean + torch.einsum("ij,sbtj->sbti", L, base[..., 0]).unsqueeze(-1)
    assert samples.shape == (2, 5, 3, 2, 1)
    assert torch.allclose(samples, expected)
    with pytest.raises(RuntimeError, match="disagrees"):
        posterior.rsample_from_base_samples(torch.Size([4]), base)


def test_models_it_cannot_predict_are_used_as_they_are() -> None:
    X = torch.rand(10, 2, dtype=torch.float64)
    matern = SingleTaskGP(X, X.sum(-1, keepdim=True), covar_module=MaternKernel(ard_num_dims=2))
    model = ModelListGP(matern)
    assert cached_predictive(model) is model
    with pytest.raises(TypeError, match="cannot predict"):
        CachedPredictive([matern])


def test_a_fit_computes_the_model_features_of_its_training_inputs_once() -> None:
    calls: list[tuple[int, ...]] = []

    def features(X: torch.Tensor) -> torch.Tensor:
        calls.append(tuple(X.shape))
        return SPACE.model_features_torch(X)  # type: ignore[return-value]

    append = AppendModelFeatures(features)
    X = points(20, seed=0)
    first = append.transform(X)
    assert torch.equal(append.transform(X), first) and len(calls) == 1
    X[0, 0] = 0.5  # changed in place: computed again
    append.transform(X)
    assert len(calls) == 2
    Xg = X.clone().requires_grad_(True)  # a gradient is wanted: never from the cache
    append.transform(Xg)
    append.transform(Xg)
    assert len(calls) == 4
