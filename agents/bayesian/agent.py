"""The Bayesian agent: Sobol start, then GP surrogates and a constrained, pending-aware qLogNEI/qLogNEHVI.

Proposal of a batch of n:

1. While the ledger holds fewer than `n_initial` trials (suggested or injected, any status), designs come
   from one scrambled Sobol sequence (pool mode: random unobserved rows) — as do all designs while fewer
   than two successful observations exist.
2. Otherwise GPs are fitted to the successful observations (`agents.bayesian.model`) and the rest of the
   batch maximises the acquisition (`agents.bayesian.acquisition`) greedily, each pick becoming pending
   for the next (`agents.bayesian.optimize`, its raw candidates partly drawn around the best designs
   observed so far); every pending trial of the ledger is pending too. Every
   k-th model-based trial (`AcquisitionSettings.exploit_every`; by default every 2nd in pool mode) is
   instead the maximiser of the expected feasible value, a greedy step on the model's best guess.
3. Once a campaign has settled on one route (`AcquisitionSettings.route_probe_after` model-based trials in
   a row on the incumbent's route), the first slot of the batch tries the incumbent's settings on another
   route not yet tried near them, once per route (`_route_probe`). Before that, once the incumbent has
   stood for `AcquisitionSettings.balance_probe_after` trials and its measured composition balance is off
   (for recipes: FeAs or KFe2As2 in its XRD), the first slot tries it with the composition corrected, once
   per incumbent (`_balance_probe`).

**Failed experiments are modelled, not dropped.** Once a trial has failed, a GP is fitted to the success
indicator s (1 for each successful design, 0 for each failed one) over all observed designs, and the
acquisition requires s ≥ ½ as one more outcome constraint: each quasi-MC sample's improvement is
multiplied by a smoothed indicator of s(ξ) ≥ ½ (botorch's constraint weighting), so the acquisition near
failed designs is scaled by the posterior probability that they succeed, while unexplored regions
(s ≈ the mean success rate) stay open. The success GP's lengthscales have a floor (0.4 of the feature
cube), so a failure shadows a neighbourhood rather than a speck. Failed designs are not in the
objective's training data (there is no measurement): without this term the objective GP sees a hole
there and proposes it again and again. Measured (`tests/agents/test_bayesian.py`): where every design
with x0 > 0.6 fails and y grows towards x0 = 1, 10 of 30 model-based suggestions failed (probing the
boundary, on which the feasible optimum lies) against 29 of 30 when failed trials are dropped. Random,
location-independent failures leave s ≈ constant and the acquisition unchanged. A completed trial
re-labelled failed later (`register_failure`) moves from the objective's data to the failures at the
next fit.

Robustness: replicates and near-duplicates are handled by the GPs' learned noise (with a floor); a
failed fit falls back to the previous hyperparameters; any other error in the Bayesian step is logged
and the batch is filled with space-filling designs — `suggest` never raises because of the model.
`last_info` tells how the last batch was made.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
import torch
from botorch.acquisition import AcquisitionFunction
from botorch.models.model import Model
from botorch.utils.multi_objective.pareto import is_non_dominated

from agents.base import DEFAULT_CONSTRAINTS, LedgerAgent
from agents.baselines import SobolStream
from agents.bayesian.acquisition import build_acquisition, build_exploitation, reference_point
from agents.bayesian.expected_warnings import expected_warnings
from agents.bayesian.model import FEASIBILITY, HyperparameterStore, Output, build_surrogate
from agents.bayesian.optimize import optimize_pool, optimize_sequential
from agents.bayesian.settings import POOL_EXPLOIT_EVERY, AcquisitionSettings
from agents.box_space import BoxSpace, PoolSpace, rows_to_points
from agents.ledger import Trial
from agents.outcomes import best_indices, feasible, outcome_value
from agents.space_base import Space

log = logging.getLogger(__name__)
MIN_SUCCESSES = 2
N_CENTRES = 5
"""Observed designs around which part of the acquisition's raw candidates are drawn (`_best_designs`)."""
ROUTE_PROBE_DISTANCE = 0.2
"""A route has been tried near the incumbent when one of its designs lies this close (Euclidean, feature
cube, continuous axes) to the incumbent's settings on that route (`_route_probe`)."""


@dataclass(frozen=True)
class TrainingData:
    """What a surrogate is fitted on and an acquisition sees (`BayesianAgent._training_data`)."""

    outputs: list[Output]
    X: torch.Tensor
    values: list[dict[str, float | None]]
    targets: dict[str, torch.Tensor]
    X_pending: torch.Tensor | None


_thread_setting = threading.Lock()
_single_thread_users = 0  # threads inside `one_torch_thread` now
_threads_before = 1  # the setting to restore when the last of them leaves


@contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one thread, then restore the setting.

    The matrices here are small (a few hundred rows): one thread is as fast as two, is not slowed tenfold
    when other processes load the cores (spinning OpenMP workers), and makes the floating-point path —
    hence a restored agent's next suggestion — independent of the process's thread setting. The setting
    is process-wide: torch work in other threads of the same process runs single-threaded meanwhile, and
    overlapping uses (two campaigns deciding at once) restore it only when the last one leaves.
    """
    global _single_thread_users, _threads_before
    with _thread_setting:
        if _single_thread_users == 0:
            _threads_before = torch.get_num_threads()
        _single_thread_users += 1
        torch.set_num_threads(1)  # in every entering thread: OpenMP keeps part of the setting per thread
    try:
        yield
    finally:
        with _thread_setting:
            _single_thread_users -= 1
            if _single_thread_users == 0:
                torch.set_num_threads(_threads_before)


class BayesianAgent(LedgerAgent):
    """Bayesian optimisation over a `Space` (continuous, route-mixed, or a pool of candidate rows).

    Args:
        space: the search space (`RecipeSpace`, `BoxSpace`, `PoolSpace`).
        seed: seeds the Sobol design, the random pool picks and every model/acquisition step.
        n_initial: trials (suggested or injected) before the first model-based proposal.
        objective, direction: the outcome to optimise and whether to maximise or minimise it.
        constraints: outcome constraints (name, ">=" | "<=", threshold), modelled by their own GPs.
        mode: "single" (qLogNEI) or "multi" (qLogNEHVI on objective and `second_objective`).
        second_objective: (name, direction) of the second objective; a recipe's `process_time_h` is
            computed from the design (deterministic model) unless measured.
        ref_point: hypervolume reference {name: value} in natural units; inferred from data if None.
        pool: candidate designs (2-D array in `space.fields` order, or list of dicts); suggestions are
            then unobserved, non-pending rows. Defaults to the rows of a `PoolSpace`.
        settings: fit and acquisition budgets (`AcquisitionSettings` or a dict of its fields).
    """

    kind = "bayesian"

    def __init__(
        self,
        space: Space,
        *,
        seed: int,
        n_initial: int = 8,
        objective: str = "trapped_field_t",
        direction: str = "max",
        constraints: Sequence[Sequence[Any]] = DEFAULT_CONSTRAINTS,
        mode: str = "single",
        second_objective: Sequence[str] = ("process_time_h", "min"),
        ref_point: Mapping[str, float] | None = None,
        pool: Any = None,
        settings: AcquisitionSettings | Mapping[str, Any] | None = None,
        id_prefix: str | None = None,
    ) -> None:
        super().__init__(
            space,
            seed=seed,
            objective=objective,
            direction=direction,
            constraints=constraints,
            mode=mode,
            second_objective=second_objective,
            id_prefix=id_prefix,
        )
        if isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1:
            raise ValueError(f"n_initial must be a positive integer, got {n_initial!r}")
        self.n_initial = n_initial
        if settings is None or isinstance(settings, AcquisitionSettings):
            self.settings = settings or AcquisitionSettings()
        else:
            try:
                self.settings = AcquisitionSettings(**settings)
            except TypeError as exc:
                raise ValueError(f"bad settings: {exc}") from None
        if self.settings.ucb_beta is not None and (self.goals.multi or self.goals.constraints):
            raise ValueError("settings.ucb_beta needs mode='single' and no outcome constraints (qUCB ignores them)")
        if ref_point is not None:
            if not self.goals.multi:
                raise ValueError("ref_point only applies in mode='multi'")
            if set(ref_point) != set(self.goals.names()):
                raise ValueError(
                    f"ref_point needs exactly the objectives {self.goals.names()}, got {sorted(ref_point)}"
                )
        self.ref_point = dict(ref_point) if ref_point is not None else None
        self._pool_arg = None if pool is None else rows_to_points(space, pool)
        pool_points = self._pool_arg
        if pool_points is None and isinstance(space, PoolSpace):
            pool_points = rows_to_points(space, space.rows)
        self._pool: list[dict[str, Any]] | None = None
        if pool_points is not None:
            X = space.encode(pool_points)
            _, first = np.unique(np.round(X, 9), axis=0, return_index=True)
            keep = np.sort(first)  # unique designs, in table order
            self._pool = [pool_points[i] for i in keep]
            self._pool_X = X[keep]
        self._hyper = HyperparameterStore()
        self._sobol = SobolStream(space.unit_dim, self.seed)
        self._route_probes: dict[str, dict[str, Any]] = {}  # route → the probe's design
        self._balance_probed: list[str] = []  # ids of the incumbents whose balance was probed
        self.last_info: dict[str, Any] = {}

    # -- proposal ------------------------------------------------------------------------------------

    def _propose(self, n: int) -> list[dict[str, Any]]:
        t0 = time.perf_counter()
        info: dict[str, Any] = {"space_filling": 0, "bayesian": 0, "fit": {}, "fallback": None}
        successes, failures = self._observed()
        n_fill = min(n, max(self.n_initial - len(self.ledger), 0))
        if len(successes) < MIN_SUCCESSES:
            n_fill = n
        designs = self._space_filling(n_fill, chosen=[])
        if n - len(designs) > 0 and len(successes) >= MIN_SUCCESSES:
            try:
                probe, kind = self._balance_probe(successes), "balance_probe"
                if probe is None:
                    probe, kind = self._route_probe(successes, failures), "route_probe"
            except Exception as exc:  # a probe is an extra; never let it stop a campaign
                log.warning("probe failed (%s: %s); proposing without it", type(exc).__name__, exc)
                probe = None
            if probe is not None:
                designs.append(probe)
                balance = self.space.balance_probe()
                info[kind] = probe["route"] if kind == "route_probe" else probe[balance.axis]  # type: ignore[union-attr]
        rest = n - len(designs)
        if rest > 0:
            try:
                new = self._bayesian(rest, successes, failures, designs, info)
                info["bayesian"] = len(new)
                designs += new
            except Exception as exc:  # never let the model stop a campaign
                log.warning(
                    "Bayesian proposal failed (%s: %s); proposing space-filling designs", type(exc).__name__, exc
                )
                info["fallback"] = f"{type(exc).__name__}: {exc}"
                designs += self._space_filling(rest, chosen=designs)
        info["space_filling"] = len(designs) - info["bayesian"] - int("route_probe" in info or "balance_probe" in info)
        info["seconds"] = time.perf_counter() - t0
        self.last_info = info
        return designs

    def _observed(self) -> tuple[list[Trial], list[Trial]]:
        """Successful and failed trials inside the campaign's space (injected designs outside it are not modelled)."""
        succ, fail = [], []
        for trial in self.ledger.with_status("completed", "failed"):
            reason = self.space.contains(trial.params)
            if reason is not None:
                log.debug("trial %s is outside the campaign's space (%s); not modelled", trial.id, reason)
            elif trial.status == "failed":
                fail.append(trial)
            elif all(v is not None for v in self.outcome_values(trial).values()):
                succ.append(trial)
        return succ, fail

    def _space_filling(self, n: int, chosen: list[dict[str, Any]]) -> list[dict[str, Any]]:
        if n <= 0:
            return []
        if self._pool is None:
            return self.space.from_unit(self._sobol.draw(n))
        available = self._available_rows(chosen)
        picks = self._rng.choice(len(available), size=min(n, len(available)), replace=False)
        return [self._pool[available[int(i)]] for i in picks]

    def _available_rows(self, chosen: list[dict[str, Any]]) -> list[int]:
        """Pool rows neither observed, pending nor already chosen for this batch."""
        used = [t.params for t in self.ledger.trials.values() if self.space.contains(t.params) is None] + chosen
        taken = {tuple(row) for row in np.round(self.space.encode(used), 9)} if used else set()
        return [i for i, row in enumerate(np.round(self._pool_X, 9)) if tuple(row) not in taken]

    def _outputs(self, with_failures: bool) -> list[Output]:
        outputs = [Output(f"objective:{o.name}", o.name, o.sign) for o in self.goals.objectives]
        modelled = set(self.goals.names())
        for c in self.goals.constraints:
            if c.name not in modelled:
                outputs.append(Output(f"constraint:{c.name}", c.name, 1.0))
                modelled.add(c.name)
        return [*outputs, FEASIBILITY] if with_failures else outputs

    def _training_data(
        self, successes: list[Trial], failures: list[Trial], chosen: list[dict[str, Any]]
    ) -> TrainingData:
        """The surrogate's outputs, inputs and targets, and the pending designs (in flight + `chosen`)."""
        space = self.space
        outputs = self._outputs(bool(failures))
        X = torch.as_tensor(space.encode([t.params for t in successes]), dtype=torch.float64)
        values = [self.outcome_values(t) for t in successes]
        targets = {o.key: torch.tensor([o.sign * v[o.name] for v in values]) for o in outputs if o is not FEASIBILITY}
        if failures:
            X_fail = torch.as_tensor(space.encode([t.params for t in failures]), dtype=torch.float64)
            targets["feasibility:X"] = torch.cat([X, X_fail])
            targets["feasibility"] = torch.cat([torch.ones(len(X)), torch.zeros(len(X_fail))]).double()
        pending_designs = [t.params for t in self.ledger.with_status("pending")] + chosen
        X_pending = torch.as_tensor(space.encode(pending_designs), dtype=torch.float64) if pending_designs else None
        return TrainingData(outputs, X, values, targets, X_pending)

    def _surrogate(self, data: TrainingData, store: HyperparameterStore) -> tuple[Model, dict[str, str]]:
        """The fitted model of every output (warm from `store`, which the fit updates)."""
        settings = self.settings
        return build_surrogate(
            self.space,
            data.outputs,
            data.X,
            data.targets,
            store,
            (settings.fit_maxiter, settings.warm_fit_maxiter),
            warp=self.input_warping,
            warp_to_bounds=settings.warp_to_bounds,
        )

    def _acquisition(self, model: Model, data: TrainingData, seed: int) -> AcquisitionFunction:
        """The campaign's acquisition on `model` (hypervolume reference from the feasible data if multi)."""
        ref = None
        if self.goals.multi:
            values = data.values
            ok = [i for i, v in enumerate(values) if feasible(self.goals, v)] or list(range(len(values)))
            Y = torch.tensor([[o.sign * values[i][o.name] for o in self.goals.objectives] for i in ok])  # type: ignore[operator]
            ref = reference_point(self.goals, Y.double(), self.ref_point)
        return build_acquisition(
            model,
            self.goals,
            data.outputs,
            data.X,
            data.X_pending,
            mc_samples=self.settings.mc_samples,
            seed=seed,
            ref_point=ref,
            ucb_beta=self.settings.ucb_beta,
        )

    def _bayesian(
        self,
        q: int,
        successes: list[Trial],
        failures: list[Trial],
        chosen: list[dict[str, Any]],
        info: dict[str, Any],
    ) -> list[dict[str, Any]]:
        seed = int(self._rng.integers(0, 2**31 - 1))
        space, settings = self.space, self.settings
        data = self._training_data(successes, failures, chosen)
        with torch.random.fork_rng(devices=[]), expected_warnings(), one_torch_thread():
            torch.manual_seed(seed)
            t0 = time.perf_counter()
            model, info["fit"] = self._surrogate(data, self._hyper)
            info["fit_seconds"] = time.perf_counter() - t0
            acq = self._acquisition(model, data, seed)
            exploit = self._exploitation(model, data, seed, q, len(chosen))
            t0 = time.perf_counter()
            if self._pool is not None:
                available = self._available_rows(chosen)
                choices = torch.as_tensor(self._pool_X[available], dtype=torch.float64)
                picked: list[int] = []
                if exploit is not None:
                    picked = optimize_pool(exploit, choices, 1, batch=settings.pool_batch)
                    _add_pending(acq, choices[picked])
                rest = [i for i in range(len(choices)) if i not in picked]
                picked += [
                    rest[i] for i in optimize_pool(acq, choices[rest], q - len(picked), batch=settings.pool_batch)
                ]
                info["acquisition_seconds"] = time.perf_counter() - t0
                info["exploitation"] = int(exploit is not None)
                return [self._pool[available[i]] for i in picked]
            generator = torch.Generator().manual_seed(seed)
            raw_samples, num_restarts, maxiter = settings.per_step(q)
            budget = {
                "raw_samples": raw_samples,
                "num_restarts": num_restarts,
                "maxiter": maxiter,
                "centres": self._best_designs(data),
                "local_share": settings.local_share,
            }
            parts = []
            if exploit is not None:
                parts.append(optimize_sequential(exploit, space, 1, generator=generator, **budget))
                _add_pending(acq, parts[0])
            if q > len(parts):
                parts.append(optimize_sequential(acq, space, q - len(parts), generator=generator, **budget))
            X_new = torch.cat(parts)
            info["acquisition_seconds"] = time.perf_counter() - t0
            info["exploitation"] = int(exploit is not None)
        return space.decode(X_new.numpy())

    def _route_probe(self, successes: list[Trial], failures: list[Trial]) -> dict[str, Any] | None:
        """The incumbent's settings on another route, once per route, when the campaign has settled on one.

        Due when the last `route_probe_after` model-based trials (probes aside) all ran on the incumbent's
        route and another route, never probed, has no design within `ROUTE_PROBE_DISTANCE` of the
        incumbent's settings. A route seen only at poor settings is predicted near the mean of all data
        there, so the acquisition never tries the good recipe on it (docs/benchmarks.md: volatile-k).
        """
        k, space = self.settings.route_probe_after, self.space
        if not k or self._pool is not None or len(space.cat_columns) < 2:
            return None
        n_axes = len(space.axes)
        trials = [t for t in self.ledger.trials.values() if space.contains(t.params) is None]
        X = torch.as_tensor(space.encode([t.params for t in trials]), dtype=torch.float64)
        route = X[:, n_axes:].argmax(dim=-1)
        probes = torch.as_tensor(space.encode(list(self._route_probes.values())), dtype=torch.float64)
        # a trial within 0.1 % of every axis of a probe is that probe (a lab may echo its parameters rounded)
        is_probe = (X[:, None, :] - probes[None]).abs().amax(dim=-1).le(1e-3).any(dim=-1)
        settled = [i for i in range(self.n_initial, len(trials)) if not is_probe[i]][-k:]
        if len(settled) < k or len({int(route[i]) for i in settled}) > 1:
            return None  # checked before the incumbent, which most suggestions never need
        best = self._best_designs(self._training_data(successes, failures, []))
        if not len(best):
            return None
        incumbent = best[0]
        own = int(incumbent[n_axes:].argmax())
        if own != int(route[settled[0]]):
            return None
        for r, name in enumerate(space.routes):
            if r == own or name in self._route_probes:
                continue
            moved = incumbent.clone()
            moved[n_axes:] = 0.0
            moved[n_axes + r] = 1.0
            moved = space.project(moved)
            there = X[route == r, :n_axes]
            if len(there) and float((there - moved[:n_axes]).norm(dim=-1).min()) <= ROUTE_PROBE_DISTANCE:
                continue
            design = space.validate(space.decode(moved[None].numpy())[0])
            self._route_probes[name] = design
            return design
        return None

    def _balance_probe(self, successes: list[Trial]) -> dict[str, Any] | None:
        """The incumbent with its composition corrected, when it has stalled and its measured balance is off.

        Due when the incumbent (the best measured feasible trial) has stood for the last
        `balance_probe_after` trials and reads |balance| ≥ the space's trigger (`Space.balance_probe`):
        the incumbent with the axis moved by the space's step against the balance's sign (too little K:
        more), within its bounds; once per incumbent. The GP learns a composition axis mostly from poor
        recipes, where it moves the objective little in absolute terms, and leaves good recipes on a bound
        (docs/benchmarks.md); the incumbent's own XRD shows which way to go.
        """
        k, probe = self.settings.balance_probe_after, self.space.balance_probe()
        if (
            not k
            or probe is None
            or self._pool is not None
            or self.goals.multi
            or len(self.ledger) < self.n_initial + k
        ):
            return None
        best = best_indices(self.goals, [self.outcome_values(t) for t in successes])
        if not best:
            return None
        incumbent = successes[best[0]]
        order = list(self.ledger.trials)
        if order.index(incumbent.id) > len(order) - 1 - k or incumbent.id in self._balance_probed:
            return None
        reading = outcome_value(probe.outcome, incumbent.params, incumbent.outcomes, self.space.derived_outcome)
        if reading is None or abs(reading) < probe.trigger:
            return None
        self._balance_probed.append(incumbent.id)
        old = float(incumbent.params[probe.axis])
        lo, hi = probe.bounds
        new = min(hi, max(lo, old + (probe.step if reading < 0 else -probe.step)))
        if abs(new - old) < 1e-9:
            return None
        return self.space.validate({**incumbent.params, probe.axis: new})

    def _best_designs(self, data: TrainingData) -> torch.Tensor:
        """Up to `N_CENTRES` observed designs to draw raw candidates around, best first: the feasible ones
        (multi-objective: the feasible non-dominated ones) by the measured first objective, then the rest."""
        keys = [o.key for o in data.outputs[: len(self.goals.objectives)]]
        Y = torch.stack([data.targets[k] for k in keys], dim=-1)
        first = torch.tensor([feasible(self.goals, v) for v in data.values], dtype=torch.bool)
        if self.goals.multi and first.any():
            front = torch.zeros_like(first)
            front[first] = is_non_dominated(Y[first])
            first = front
        by_value = torch.argsort(Y[:, 0], descending=True, stable=True)
        order = torch.cat([by_value[first[by_value]], by_value[~first[by_value]]])
        return data.X[order[:N_CENTRES]]

    def _exploitation(
        self, model: Model, data: TrainingData, seed: int, q: int, n_chosen: int
    ) -> AcquisitionFunction | None:
        """The exploitation acquisition if one of this batch's trials is an exploitation slot, else None.

        Model-based trial m (counted from `n_initial`) is one when m mod k = k − 1 (`exploit_every` = k).
        Not while designs are pending in a continuous space: the model's best guess has not moved since
        the last exploitation pick, which may be among them (a pool offers only unobserved, non-pending rows).
        """
        k = self.exploit_every
        if not k or self.goals.multi or (self._pool is None and data.X_pending is not None):
            return None
        first = len(self.ledger) + n_chosen - self.n_initial
        if not any((first + i) % k == k - 1 for i in range(q) if first + i >= 0):
            return None
        floor = float(data.targets[data.outputs[0].key].min())
        return build_exploitation(
            model, self.goals, data.outputs, data.X, floor, mc_samples=self.settings.mc_samples, seed=seed + 1
        )

    # -- checkpoint ----------------------------------------------------------------------------------

    def _config(self) -> dict[str, Any]:
        return {
            "n_initial": self.n_initial,
            "ref_point": self.ref_point,
            "pool": self._pool_arg,
            "settings": self.settings.to_state(),
        }

    @property
    def input_warping(self) -> bool:
        """Whether the GPs warp their inputs: the settings' choice, else the space's default."""
        chosen = self.settings.input_warping
        return self.space.input_warping_default if chosen is None else chosen

    @property
    def exploit_every(self) -> int:
        """Every k-th model-based trial exploits (0: never): the settings' choice, else the agent's default."""
        chosen = self.settings.exploit_every
        if chosen is not None:
            return chosen
        return POOL_EXPLOIT_EVERY if self._pool is not None and self.settings.ucb_beta is None else 0

    @classmethod
    def restore(cls, state: dict[str, Any]) -> Self:
        settings = state.get("config", {}).get("settings")
        if isinstance(settings, Mapping):
            # a checkpoint from before an option resumes with the model and acquisition it was running
            older = {
                "input_warping": False,
                "exploit_every": 0,
                "local_share": 0.0,
                "route_probe_after": 0,
                "balance_probe_after": 0,
                "warp_to_bounds": False,
            }
            missing = {k: v for k, v in older.items() if k not in settings}
            if missing:
                state = {**state, "config": {**state["config"], "settings": {**settings, **missing}}}
        return super().restore(state)

    def _extra_state(self) -> dict[str, Any]:
        return {
            "sobol": self._sobol.to_state(),
            "hyperparameters": self._hyper.to_state(),
            "route_probes": {k: dict(v) for k, v in self._route_probes.items()},
            "balance_probed": list(self._balance_probed),
        }

    def _restore_extra(self, state: Mapping[str, Any]) -> None:
        self._sobol = SobolStream(self.space.unit_dim, state["sobol"]["seed"], state["sobol"]["drawn"])
        self._hyper = HyperparameterStore(state["hyperparameters"])
        self._route_probes = {k: dict(v) for k, v in state.get("route_probes", {}).items()}
        self._balance_probed = list(state.get("balance_probed", []))

    def warm_up(self) -> float:
        """Exercise fit and acquisition once on synthetic data over this agent's space; seconds taken."""
        return warm_up(self.space)


def _add_pending(acq: AcquisitionFunction, X: torch.Tensor) -> None:
    """Make `X` (n, d) pending for `acq`, beside what is pending already."""
    pending = acq.X_pending
    acq.set_X_pending(torch.cat([pending, X]) if pending is not None else X)


def warm_up(space: Space | None = None, *, n_points: int = 10) -> float:
    """Fit and optimise once on synthetic data, so a service's first real suggestion is not the slow one.

    Touches no agent's state and restores torch's global RNG. Returns the seconds it took.
    """
    t0 = time.perf_counter()
    space = space or BoxSpace({f"x{i}": (0.0, 1.0) for i in range(6)})
    with torch.random.fork_rng(devices=[]):
        agent = BayesianAgent(
            space,
            seed=0,
            n_initial=n_points,
            objective="y",
            constraints=(("c", ">=", 0.0),),
            settings=AcquisitionSettings(raw_samples=32, num_restarts=2, maxiter=5, mc_samples=32),
        )
        designs = agent.suggest(n_points)
        X = space.encode(designs)
        observations = [
            {**d, "y": float(-np.sum((x - 0.5) ** 2)), "c": float(x[0] - 0.1)} for d, x in zip(designs, X, strict=True)
        ]
        observations[-1] = {"_id": designs[-1]["_id"], "failed": True, "reason": "warm-up"}
        agent.ingest(observations)
        agent.suggest(1)
    return time.perf_counter() - t0
