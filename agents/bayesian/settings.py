"""Knobs of the Bayesian agent's model fit and acquisition optimisation (kept in its checkpoint)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

POOL_EXPLOIT_EVERY = 2
"""`exploit_every` of an agent choosing among the rows of a pool, unless its settings say otherwise."""


@dataclass(frozen=True)
class AcquisitionSettings:
    """Budgets of the fit and the acquisition optimisation (`suggest(4)` at 200 observations: ~1 s, docs/agents.md).

    The acquisition optimiser's three budgets are per `suggest` call, shared among the q greedy steps of
    a batch (each step gets ⌈budget / q⌉, with floors): a batch costs about what one recipe does, and a
    single recipe gets the whole budget (docs/benchmarks.md measures what that buys).

    mc_samples: quasi-MC samples of the posterior per acquisition evaluation.
    raw_samples: random candidates scored to pick the L-BFGS-B starts (per call; ≥ 64 per step).
    local_share: the share of them drawn around the best designs observed so far
        (`agents.bayesian.optimize.raw_designs`); the rest are uniform over the space. 0: all uniform.
    num_restarts: L-BFGS-B starts (per call; ≥ 2 per step; the best raw sample of every route among them).
    maxiter: L-BFGS-B iterations (per call; ≥ 10 per step).
    fit_maxiter: L-BFGS-B iterations of a marginal-likelihood fit from botorch's initial hyperparameters.
    warm_fit_maxiter: the same for a fit that starts from the previous fit's hyperparameters; a fit cut
        short carries its progress into the next one, so the cap bounds latency, not final quality.
    route_probe_after: after this many model-based trials in a row on the incumbent's route, the next trial
        is the incumbent's settings on another route not yet tried near them, once per route
        (`BayesianAgent._route_probe`). 0: never.
    balance_probe_after: once the incumbent has stood for this many trials and its measured composition
        balance is off (`Space.balance_probe`: for recipes, FeAs or KFe2As2 in the XRD), the next trial is
        the incumbent with the composition axis corrected, once per incumbent (`BayesianAgent._balance_probe`).
        0: never.
    pool_batch: pool rows scored per acquisition call in pool mode.
    ucb_beta: use qUCB with this β instead of qLogNEI (single objective, no constraints).
    input_warping: the objective and constraint GPs learn a warping of each input (`agents.bayesian.model`);
        None: the space's default (`Space.input_warping_default`: on for recipes, off for boxes and pools).
    warp_to_bounds: the warping spans the whole feature cube with a finite slope at its bounds, so a
        design on a bound is predicted from the observations near it (`agents.bayesian.model.make_gp`).
        False: botorch's default warping, of the observed range only, whose slope may become infinite at
        its ends (checkpoints written before this option).
    exploit_every: every k-th model-based trial maximises the expected feasible value (the posterior mean
        weighted by the probability of meeting the constraints) instead of qLogNEI: a greedy step that
        climbs the model's best guess (`agents.bayesian.acquisition.ExpectedFeasibleValue`). At most one
        per batch, and none while designs are pending in a continuous space. 0: never. None: the agent's
        default, `POOL_EXPLOIT_EVERY` in pool mode with qLogNEI (it finds the best rows of the Liang pools sooner,
        docs/benchmarks.md) and never in continuous spaces (no gain on the recipe campaigns).
        Single-objective mode only.
    """

    mc_samples: int = 128
    raw_samples: int = 1024
    num_restarts: int = 10
    maxiter: int = 50
    fit_maxiter: int = 150
    warm_fit_maxiter: int = 30
    pool_batch: int = 512
    ucb_beta: float | None = None
    input_warping: bool | None = None
    warp_to_bounds: bool = True
    exploit_every: int | None = None
    local_share: float = 0.5
    route_probe_after: int = 12
    balance_probe_after: int = 5

    def __post_init__(self) -> None:
        beta = self.ucb_beta
        if beta is not None and (isinstance(beta, bool) or not isinstance(beta, int | float) or not beta > 0):
            raise ValueError(f"AcquisitionSettings.ucb_beta must be None or a positive number, got {beta!r}")
        warp = self.input_warping
        if warp is not None and not isinstance(warp, bool):
            raise ValueError(f"AcquisitionSettings.input_warping must be true, false or None, got {warp!r}")
        if not isinstance(self.warp_to_bounds, bool):
            raise ValueError(f"AcquisitionSettings.warp_to_bounds must be true or false, got {self.warp_to_bounds!r}")
        k = self.exploit_every
        if k is not None and (isinstance(k, bool) or not isinstance(k, int) or k < 0):
            raise ValueError(f"AcquisitionSettings.exploit_every must be None or an integer ≥ 0, got {k!r}")
        for name in ("route_probe_after", "balance_probe_after"):
            probe = getattr(self, name)
            if isinstance(probe, bool) or not isinstance(probe, int) or probe < 0:
                raise ValueError(f"AcquisitionSettings.{name} must be an integer ≥ 0, got {probe!r}")
        share = self.local_share
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0.0 <= share <= 1.0:
            raise ValueError(f"AcquisitionSettings.local_share must be a number in [0, 1], got {share!r}")
        for f in fields(self):
            if f.name in (
                "ucb_beta",
                "input_warping",
                "warp_to_bounds",
                "exploit_every",
                "local_share",
                "route_probe_after",
                "balance_probe_after",
            ):
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"AcquisitionSettings.{f.name} must be a positive integer, got {value!r}")

    def per_step(self, q: int) -> tuple[int, int, int]:
        """(raw_samples, num_restarts, maxiter) of each greedy step of a q-batch."""
        share = max(int(q), 1)
        return (
            max(math.ceil(self.raw_samples / share), min(self.raw_samples, 64)),
            max(math.ceil(self.num_restarts / share), min(self.num_restarts, 2)),
            max(math.ceil(self.maxiter / share), min(self.maxiter, 10)),
        )

    def to_state(self) -> dict[str, Any]:
        return asdict(self)
