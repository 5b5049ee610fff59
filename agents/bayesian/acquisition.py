"""The acquisition: qLogNEI (one objective) or qLogNEHVI (two), with constraints and pending points.

Outputs of the surrogate are f_1..f_m (signed objectives), g_k (constraint outcomes) and, once a trial
has failed, s (success indicator). On each quasi-MC posterior sample ξ the improvement is weighted by
the smoothed indicator of feasibility, botorch's constrained formulation:

    α(x) = log E_ξ[ I(x, ξ) · Π_k σ(−c_k(ξ) / η) ],

with c_k ≤ 0 meaning feasible: c = t − g for `g ≥ t`, c = g − t for `g ≤ t`, and c = ½ − s for the
success indicator (a design whose predicted success is below one half counts as failing). I is the
improvement over the best feasible baseline value (qLogNEI) or the hypervolume improvement over the
feasible Pareto front (qLogNEHVI). Pending designs enter as `X_pending`: they are treated as already
observed (jointly sampled with x), so their neighbourhood is worth little and a batch spreads out.

The exploitation step (`AcquisitionSettings.exploit_every`) maximises instead the expected feasible value
E_ξ[(f(x, ξ) − f_min) · Π_k σ(−c_k(ξ) / η)], f_min the lowest observed value: the posterior mean where
the design surely meets the constraints, shrunk towards the worst observation where it may not.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from botorch.acquisition import AcquisitionFunction
from botorch.acquisition.logei import qLogNoisyExpectedImprovement
from botorch.acquisition.monte_carlo import MCAcquisitionFunction, qUpperConfidenceBound
from botorch.acquisition.multi_objective.logei import qLogNoisyExpectedHypervolumeImprovement
from botorch.acquisition.multi_objective.objective import IdentityMCMultiOutputObjective
from botorch.acquisition.objective import GenericMCObjective
from botorch.acquisition.utils import compute_smoothed_feasibility_indicator
from botorch.models.model import Model, ModelList
from botorch.sampling import ListSampler, MCSampler, SobolQMCNormalSampler
from botorch.sampling.get_sampler import get_sampler
from botorch.utils.multi_objective.hypervolume import infer_reference_point
from botorch.utils.transforms import t_batch_mode_transform

from agents.bayesian.model import FEASIBILITY, Output
from agents.bayesian.predictive import cached_predictive
from agents.outcomes import Goals, pareto_mask

SUCCESS_THRESHOLD = 0.5
"""Predicted success probability below which a design counts as failing."""


def constraint_callables(goals: Goals, outputs: Sequence[Output]) -> list[Callable[[torch.Tensor], torch.Tensor]]:
    """c(Z) ≤ 0 ⇔ feasible, on samples Z (..., n_outputs) of the surrogate."""
    index = {o.name: i for i, o in enumerate(outputs) if o is not FEASIBILITY}
    out: list[Callable[[torch.Tensor], torch.Tensor]] = []
    for c in goals.constraints:
        i, sign, thr = index[c.name], outputs[index[c.name]].sign, c.threshold
        if c.op == ">=":
            out.append(lambda Z, i=i, s=sign, t=thr: t - s * Z[..., i])
        else:
            out.append(lambda Z, i=i, s=sign, t=thr: s * Z[..., i] - t)
    if FEASIBILITY in outputs:
        j = list(outputs).index(FEASIBILITY)
        out.append(lambda Z, j=j: SUCCESS_THRESHOLD - Z[..., j])
    return out


def make_sampler(model: Model, n_features: int, mc_samples: int, seed: int) -> MCSampler:
    """Quasi-MC normal base samples, seeded; one independent stream per model of a mixed model list."""
    shape = torch.Size([mc_samples])
    if isinstance(model, ModelList) and not hasattr(model, "likelihood"):
        probe = torch.zeros(1, n_features, dtype=torch.float64)
        return ListSampler(*[get_sampler(m.posterior(probe), shape, seed=seed + i) for i, m in enumerate(model.models)])
    return SobolQMCNormalSampler(shape, seed=seed)


def first_output_objective() -> GenericMCObjective:
    """The MC objective that reads output 0 (the signed first objective) of the surrogate's samples."""
    return GenericMCObjective(lambda Z, X=None: Z[..., 0])


def reference_point(goals: Goals, Y_feasible: torch.Tensor, given: Mapping[str, float] | None) -> torch.Tensor:
    """Hypervolume reference in the signed (maximised) objective space.

    Given values (natural units) are signed; otherwise botorch's heuristic on the observed Pareto front:
    nadir − 0.1 · range per objective.
    """
    if given:
        return torch.tensor([o.sign * float(given[o.name]) for o in goals.objectives], dtype=torch.float64)
    front = Y_feasible[torch.as_tensor(pareto_mask(Y_feasible.numpy()))]
    return infer_reference_point(front)


def build_acquisition(
    model: Model,
    goals: Goals,
    outputs: Sequence[Output],
    X_baseline: torch.Tensor,
    X_pending: torch.Tensor | None,
    *,
    mc_samples: int,
    seed: int,
    ref_point: torch.Tensor | None = None,
    ucb_beta: float | None = None,
) -> AcquisitionFunction:
    """qLogNEI on output 0, or qLogNEHVI on outputs 0..m−1, with every constraint of `goals`.

    With `ucb_beta` and nothing to constrain (no outcome constraint, no failure modelled): qUCB on output 0.
    The acquisition predicts through `cached_predictive(model)` (the same posterior, computed faster).
    """
    model = cached_predictive(model)
    constraints = constraint_callables(goals, outputs) or None
    sampler = make_sampler(model, X_baseline.shape[-1], mc_samples, seed)
    pending = X_pending if X_pending is not None and len(X_pending) else None
    first_output = first_output_objective()
    if ucb_beta is not None and not goals.multi and constraints is None:
        return qUpperConfidenceBound(model, beta=ucb_beta, sampler=sampler, objective=first_output, X_pending=pending)
    if not goals.multi:
        return qLogNoisyExpectedImprovement(
            model,
            X_baseline=X_baseline,
            sampler=sampler,
            objective=first_output,
            constraints=constraints,
            X_pending=pending,
            prune_baseline=True,
            cache_root=False,  # measured: the cached-root path is slower on CPU at these sizes
        )
    assert ref_point is not None
    return qLogNoisyExpectedHypervolumeImprovement(
        model,
        ref_point=ref_point,
        X_baseline=X_baseline,
        sampler=sampler,
        objective=IdentityMCMultiOutputObjective(outcomes=list(range(len(goals.objectives)))),
        constraints=constraints,
        X_pending=pending,
        prune_baseline=True,
        cache_root=False,
    )


class ExpectedFeasibleValue(MCAcquisitionFunction):
    """E_ξ[(f(x, ξ) − floor) · Π_k σ(−c_k(ξ)/η)] for one design (q = 1): exploitation under constraints."""

    def __init__(
        self,
        model: Model,
        sampler: MCSampler,
        constraints: list[Callable[[torch.Tensor], torch.Tensor]],
        floor: float,
        eta: float = 1e-3,
    ) -> None:
        super().__init__(model=model, sampler=sampler, objective=first_output_objective())
        self.constraint_fns = constraints
        self.floor = floor
        self.eta = eta

    @t_batch_mode_transform(expected_q=1)
    def forward(self, X: torch.Tensor) -> torch.Tensor:
        samples = self.get_posterior_samples(self.model.posterior(X))  # (s, b, 1, m)
        value = samples[..., 0] - self.floor
        if self.constraint_fns:
            value = value * compute_smoothed_feasibility_indicator(self.constraint_fns, samples, self.eta)
        return value.mean(0).squeeze(-1)


def build_exploitation(
    model: Model,
    goals: Goals,
    outputs: Sequence[Output],
    X_baseline: torch.Tensor,
    floor: float,
    *,
    mc_samples: int,
    seed: int,
) -> AcquisitionFunction:
    """`ExpectedFeasibleValue` on output 0 with every constraint of `goals` (and the success indicator)."""
    model = cached_predictive(model)
    sampler = make_sampler(model, X_baseline.shape[-1], mc_samples, seed)
    return ExpectedFeasibleValue(model, sampler, constraint_callables(goals, outputs), floor)
