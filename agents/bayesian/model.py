"""Surrogates: one model per output, GPs fitted warm from the last hyperparameters, with a fallback.

Outputs, in order: the objectives (signed so that each is maximised), the constraint outcomes, and —
once a trial has failed — the success indicator s ∈ {0, 1} (1 = the experiment gave a measurement).
Each is a `SingleTaskGP` in float64: ARD RBF kernel with botorch's dimension-scaled log-normal
lengthscale prior, `Normalize` on the inputs (bounds = the feature cube), `Standardize` on the outcome,
a learned homoscedastic noise with a floor (so replicates and near-duplicates stay positive definite).
The objective and constraint GPs also see the space's model features (`Space.model_features_torch`:
for recipes, the milling dose and thermal budget) appended to their inputs, each with its own lengthscale,
and (`warp=True`) learn a Kumaraswamy-CDF warping of every input (botorch's `Warp`, log-normal priors
centred on the identity; over the whole feature cube with both concentrations ≥ 1 unless `warp_to_bounds` is
off): a recipe's response has cliffs (under-milled powder does not react) and long
plateaus that one stationary lengthscale per axis cannot both follow.
An outcome the space computes from the design (a recipe's process time) is a deterministic model.

Fits maximise the exact marginal log likelihood with L-BFGS-B (`fit_gpytorch_mll`), starting from the
hyperparameters of the previous fit: cheaper, and it makes a checkpoint reproduce the next fit exactly.
A fit that fails (NotPSD, "all retries failed", non-finite parameters) falls back to the previous
hyperparameters; with none to fall back to, `FitError` tells the agent to propose space-filling designs.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from botorch.exceptions.warnings import OptimizationWarning
from botorch.fit import fit_gpytorch_mll
from botorch.models import ModelListGP, SingleTaskGP
from botorch.models.deterministic import GenericDeterministicModel
from botorch.models.model import Model, ModelList
from botorch.models.transforms import Normalize, Standardize
from botorch.models.transforms.input import ChainedInputTransform, InputTransform, Warp
from gpytorch.constraints import GreaterThan
from gpytorch.kernels import RBFKernel
from gpytorch.mlls import ExactMarginalLogLikelihood
from gpytorch.priors import LogNormalPrior

from agents.bayesian.expected_warnings import expected_warnings
from agents.bayesian.likelihood import CholeskyExactMLL, supported
from agents.space_base import Space

log = logging.getLogger(__name__)
DTYPE = torch.float64


class FitError(RuntimeError):
    """A GP could not be fitted and there are no earlier hyperparameters to fall back to."""


@dataclass(frozen=True)
class Output:
    """One modelled output: `key` names its hyperparameters, the model predicts sign · outcome `name`."""

    key: str
    name: str
    sign: float = 1.0


FEASIBILITY = Output("feasibility", "", 1.0)


class HyperparameterStore:
    """The raw hyperparameters of the last successful fit of each output, as JSON-ready lists."""

    def __init__(self, state: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.params: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (state or {}).items()}

    def load_into(self, key: str, model: torch.nn.Module) -> bool:
        saved = self.params.get(key)
        if not saved:
            return False
        loaded = False
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in saved:
                    value = torch.as_tensor(saved[name], dtype=param.dtype)
                    if value.shape == param.shape:
                        param.copy_(value)
                        loaded = True
        return loaded

    def save_from(self, key: str, model: torch.nn.Module) -> None:
        self.params[key] = {name: p.detach().tolist() for name, p in model.named_parameters()}

    def to_state(self) -> dict[str, dict[str, Any]]:
        return {k: dict(v) for k, v in self.params.items()}


FIT_FTOL = 1e-6
"""Stop a fit when an L-BFGS-B step improves the per-point negative log likelihood by less than this
(relative). scipy's default (2e-9) lets irrelevant lengthscales drift for hundreds of evaluations: on 200
simulated recipes it took 310 evaluations to gain 2e-4 over the 114 this tolerance needs."""

FEASIBILITY_MIN_LENGTHSCALE = 0.4
"""Lengthscale floor (feature-cube units) of the success-indicator GP. A step from success to failure
would otherwise shrink its lengthscales until each failure shadows only a speck around itself, and the
failing region would be probed again and again next to earlier failures (measured on a half-plane
failure region: 4/12 suggestions failing with the floor, 6–10/12 without)."""


Features = Callable[[torch.Tensor], "torch.Tensor | None"]


class AppendModelFeatures(InputTransform):
    """Appends `features(X)` (..., k) to the inputs, on training and on every prediction.

    The features of the last input that needs no gradient are kept while that tensor is unchanged: a fit
    transforms the same training inputs at every likelihood evaluation.
    """

    def __init__(self, features: Features) -> None:
        super().__init__()
        self.features = features
        self.transform_on_train = self.transform_on_eval = self.transform_on_fantasize = True
        self._last: tuple[torch.Tensor, int, torch.Tensor | None] | None = None

    def transform(self, X: torch.Tensor) -> torch.Tensor:
        last = self._last
        if last is not None and last[0] is X and last[1] == X._version and not X.requires_grad:
            extra = last[2]
        else:
            extra = self.features(X)
            if not X.requires_grad:
                self._last = (X, X._version, extra)
        return X if extra is None else torch.cat([X, extra.to(X)], dim=-1)


WARP_PRIOR_SCALE = math.sqrt(0.75)
"""σ of the log-normal priors on the warping's two concentrations (median 1: the identity warp)."""

WARP_MIN_CONCENTRATION = 1.0
"""Lower bound of both concentrations of a warping that reaches the bounds (`make_gp`'s `warp_to_bounds`).

botorch's `Warp` lets them fall to 1e-4, and the Kumaraswamy CDF 1 − (1 − xᵃ)ᵇ has an infinite slope at
x = 0 when a < 1 and at x = 1 when b < 1: the strip next to that bound is stretched so far that the bound
looks far from every observation and the GP predicts the prior mean there. Fits on recipe campaigns push
a and b below 1 on most inputs, yet several of a recipe's optima lie on a bound (the highest pressure,
the lowest ball-to-powder ratio). With a, b ≥ 1 the warp can still stretch an interior cliff and
compress the plateaus beside it, with a finite slope everywhere."""


def make_gp(
    X: torch.Tensor,
    y: torch.Tensor,
    min_lengthscale: float | None = None,
    features: Features | None = None,
    warp: bool = False,
    warp_to_bounds: bool = True,
) -> SingleTaskGP:
    """A GP on the feature cube (plus `features`, if given and not None on `X`; input warping if `warp`).

    `warp_to_bounds`: the warping is one of the whole feature cube with both concentrations ≥
    `WARP_MIN_CONCENTRATION`. Otherwise it is botorch's default: a warping of the training inputs' range,
    which clamps every input beyond it (the GP predicts the same anywhere past the outermost observation
    along an axis), with concentrations down to 1e-4.
    """
    d = X.shape[-1]
    extra = features(X[:1].to(DTYPE)) if features is not None else None
    n_extra = 0 if extra is None else extra.shape[-1]
    unit = torch.stack([torch.zeros(d + n_extra, dtype=DTYPE), torch.ones(d + n_extra, dtype=DTYPE)])
    steps: dict[str, InputTransform] = {}
    if n_extra:
        assert features is not None
        steps["features"] = AppendModelFeatures(features)
    steps["normalize"] = Normalize(d + n_extra, bounds=unit)
    if warp:
        steps["warp"] = Warp(
            d=d + n_extra,
            indices=list(range(d + n_extra)),
            bounds=unit if warp_to_bounds else None,
            concentration1_prior=LogNormalPrior(0.0, WARP_PRIOR_SCALE),
            concentration0_prior=LogNormalPrior(0.0, WARP_PRIOR_SCALE),
        )
        if warp_to_bounds:
            for name in ("concentration0", "concentration1"):
                floor = GreaterThan(WARP_MIN_CONCENTRATION, transform=None, initial_value=1.0)
                steps["warp"].register_constraint(name, floor)
    transform: InputTransform = ChainedInputTransform(**steps) if len(steps) > 1 else steps["normalize"]
    covar = None
    if min_lengthscale is not None:
        # botorch's default kernel (dimension-scaled log-normal prior), with a higher lengthscale floor
        prior = LogNormalPrior(loc=math.sqrt(2) + math.log(d) * 0.5, scale=math.sqrt(3))
        initial = max(float(prior.mode), 2 * min_lengthscale)
        floor = GreaterThan(min_lengthscale, transform=None, initial_value=initial)
        covar = RBFKernel(ard_num_dims=d + n_extra, lengthscale_prior=prior, lengthscale_constraint=floor)
    return SingleTaskGP(
        X.to(DTYPE),
        y.to(DTYPE).reshape(-1, 1),
        covar_module=covar,
        input_transform=transform,
        outcome_transform=Standardize(1),
    )


def fit_gp(
    key: str,
    X: torch.Tensor,
    y: torch.Tensor,
    store: HyperparameterStore,
    maxiter: tuple[int, int],
    features: Features | None = None,
    warp: bool = False,
    warp_to_bounds: bool = True,
) -> tuple[Model, str]:
    """A fitted GP and how: "fit" / "warm fit" or "previous" (the fit failed, last hyperparameters kept).

    `maxiter` is (cold, warm): L-BFGS-B iterations from botorch's initial values / from the last fit.
    """
    mls = FEASIBILITY_MIN_LENGTHSCALE if key == FEASIBILITY.key else None
    with expected_warnings():
        gp = make_gp(X, y, mls, features, warp, warp_to_bounds)
    warm = store.load_into(key, gp)
    mll = CholeskyExactMLL(gp.likelihood, gp) if supported(gp) else ExactMarginalLogLikelihood(gp.likelihood, gp)
    try:
        with expected_warnings():
            # an L-BFGS-B warning (line search ended, iteration cap) is a result, not a reason to restart
            # from a random draw of the priors: that would throw the warm start away
            fit_gpytorch_mll(
                mll,
                optimizer_kwargs={"options": {"maxiter": maxiter[1] if warm else maxiter[0], "ftol": FIT_FTOL}},
                warning_handler=lambda w: issubclass(w.category, OptimizationWarning),
            )
        if not all(torch.isfinite(p).all() for p in gp.parameters()):
            raise FitError("non-finite hyperparameters")
    except Exception as exc:  # NotPSDError, ModelFittingError, FitError, numerical RuntimeErrors
        if not warm or key not in store.params:
            raise FitError(f"fitting {key} failed ({type(exc).__name__}: {exc}) and no earlier fit exists") from exc
        log.warning("fitting %s failed (%s: %s); keeping the previous hyperparameters", key, type(exc).__name__, exc)
        with expected_warnings():
            gp = make_gp(X, y, mls, features, warp, warp_to_bounds)
        store.load_into(key, gp)
        gp.eval()
        return gp, "previous"
    store.save_from(key, gp)
    gp.eval()
    return gp, "warm fit" if warm else "fit"


def deterministic(space: Space, output: Output) -> Model | None:
    """A deterministic model of an outcome the space computes from the design, else None."""
    probe = torch.zeros(1, space.n_features, dtype=DTYPE)
    if space.derived_outcome_torch(output.name, probe) is None:
        return None

    def f(X: torch.Tensor) -> torch.Tensor:
        value = space.derived_outcome_torch(output.name, X)
        assert value is not None
        return (output.sign * value).unsqueeze(-1)

    return GenericDeterministicModel(f, num_outputs=1)


def build_surrogate(
    space: Space,
    outputs: Sequence[Output],
    X: torch.Tensor,
    targets: Mapping[str, torch.Tensor],
    store: HyperparameterStore,
    maxiter: tuple[int, int],
    warp: bool = False,
    warp_to_bounds: bool = True,
) -> tuple[Model, dict[str, str]]:
    """One model per output (GP on `X`, `targets[key]`, or deterministic) gathered in a model list.

    The feasibility output trains on its own inputs, `targets["feasibility:X"]` with labels
    `targets["feasibility"]`, without model features or warping. Returns the model and how each output
    was obtained.
    """
    models: list[Model] = []
    status: dict[str, str] = {}
    for output in outputs:
        model = deterministic(space, output) if output is not FEASIBILITY else None
        if model is not None:
            models.append(model)
            status[output.key] = "deterministic"
            continue
        X_out = targets["feasibility:X"] if output is FEASIBILITY else X
        plain = output is FEASIBILITY
        features = None if plain else space.model_features_torch
        gp, how = fit_gp(
            output.key, X_out, targets[output.key], store, maxiter, features, warp and not plain, warp_to_bounds
        )
        models.append(gp)
        status[output.key] = how
    if all(isinstance(m, SingleTaskGP) for m in models):
        return ModelListGP(*models), status
    return ModelList(*models), status
