"""The model's view of a Bayesian campaign: the surrogate along each recipe axis through the incumbent.

For every continuous axis of the space, a 1-D sweep (BOXVIA's view of a model) through the *incumbent*
(the best feasible observed design; the best observed one when none is feasible), the other axes held
at the incumbent's values and the categorical (a recipe's route) held at the incumbent's:

    mean(x), σ(x)   posterior mean and standard deviation of the first objective's GP, natural units
                    (σ of the latent function: the learned noise is left out, so σ shrinks at data);
    acquisition(x)  the agent's acquisition (qLogNEI / qLogNEHVI, log scale; qUCB) of x as a batch of one,
                    with the ledger's pending designs pending, as the agent's next proposal would see it.

The GPs are fitted as `BayesianAgent._bayesian` fits them (same outputs, targets, warping and fit
budgets) but from a *copy* of the agent's hyperparameter store, under a forked torch RNG and without
touching the agent's own RNG: computing the view never changes what the agent suggests next.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
import torch

from agents.bayesian.agent import MIN_SUCCESSES, BayesianAgent, one_torch_thread
from agents.bayesian.expected_warnings import expected_warnings
from agents.bayesian.model import HyperparameterStore
from agents.ledger import Trial
from agents.outcomes import best_indices, feasible, pareto_mask

SWEEP_POINTS = 40
ACQUISITION_CHUNK = 128
"""Designs scored per acquisition call (each is a q=1 batch; chunks bound the joint posterior's memory)."""


class ModelViewError(ValueError):
    """The agent has no model to show yet (too few successful observations)."""


def _axes(agent: BayesianAgent) -> list[tuple[int, str]]:
    """(feature column, field name) of every continuous axis of the agent's space."""
    space = agent.space
    names = getattr(space, "axes", space.fields)
    continuous = [j for j in range(space.n_features) if j not in set(space.cat_columns)]
    return list(zip(continuous, names, strict=False))


def _incumbent(agent: BayesianAgent, successes: list[Trial]) -> tuple[Trial, bool]:
    """The best feasible success (first of the Pareto set in multi mode), else the best success; feasible?"""
    values = [agent.outcome_values(t) for t in successes]
    best = best_indices(agent.goals, values)
    if best:
        return successes[best[0]], True
    first = agent.goals.objectives[0]
    i = int(np.argmax([first.sign * v[first.name] for v in values]))  # type: ignore[operator]
    return successes[i], False


def model_view(agent: BayesianAgent, points: int = SWEEP_POINTS, with_acquisition: bool = True) -> dict[str, Any]:
    """The sweeps of `agent`'s surrogate through its incumbent (see the module's docstring), JSON-ready.

    Raises `ModelViewError` while fewer than two successful observations exist (there is no model yet).
    """
    if points < 2:
        raise ValueError(f"points must be at least 2, got {points}")
    t0 = time.perf_counter()
    successes, failures = agent._observed()
    if len(successes) < MIN_SUCCESSES:
        raise ModelViewError(
            f"the model needs {MIN_SUCCESSES} successful observations; this campaign has {len(successes)}"
        )
    space, goals = agent.space, agent.goals
    data = agent._training_data(successes, failures, chosen=[])

    incumbent, incumbent_feasible = _incumbent(agent, successes)
    x0 = space.encode([incumbent.params])[0]
    grid = np.linspace(0.0, 1.0, points)
    objective = goals.objectives[0]
    axes_out: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    with torch.random.fork_rng(devices=[]), expected_warnings(), one_torch_thread():
        torch.manual_seed(agent.seed)
        store = HyperparameterStore(agent._hyper.to_state())  # a copy: the agent's next fit starts where it was
        model, fit = agent._surrogate(data, store)
        acq = agent._acquisition(model, data, agent.seed) if with_acquisition else None
        gp = model.models[0]  # type: ignore[attr-defined]
        for column, name in _axes(agent):
            Xs = np.tile(x0, (points, 1))
            Xs[:, column] = grid
            X_sweep = space.project(torch.as_tensor(Xs, dtype=torch.float64))
            designs = space.decode(X_sweep.numpy())
            xs = [float(d[name]) for d in designs]
            if max(xs) - min(xs) <= 1e-12 * max(1.0, abs(xs[0])):
                held.append({"name": name, "value": xs[0]})  # no freedom on this axis for the incumbent's route
                continue
            with torch.no_grad():
                posterior = gp.posterior(X_sweep)
                mean = posterior.mean.squeeze(-1) * objective.sign
                sd = posterior.variance.clamp_min(0.0).sqrt().squeeze(-1)
                acquisition = None
                if acq is not None:
                    chunks = [acq(c.unsqueeze(-2)) for c in X_sweep.split(ACQUISITION_CHUNK)]
                    acquisition = torch.cat(chunks).tolist()
            axes_out.append(
                {
                    "name": name,
                    "x": xs,
                    "mean": finite(mean.tolist()),
                    "sd": finite(sd.tolist()),
                    "acquisition": finite(acquisition),
                    "incumbent_x": float(incumbent.params[name]),
                    # evenly spaced in the feature cube: equal steps in x unless the axis is logarithmic
                    "log_scale": not math.isclose(xs[1] - xs[0], xs[-1] - xs[-2], rel_tol=1e-6),
                }
            )
    incumbent_values = agent.outcome_values(incumbent)
    return {
        "objective": {"name": objective.name, "direction": objective.direction},
        "objectives": [{"name": o.name, "direction": o.direction} for o in goals.objectives],
        "constraints": [[c.name, c.op, c.threshold] for c in goals.constraints],
        "incumbent": {
            "id": incumbent.id,
            "params": dict(incumbent.params),
            "value": incumbent_values[objective.name],
            "feasible": incumbent_feasible,
        },
        "axes": axes_out,
        "held": held,
        "acquisition": _acquisition_name(agent) if with_acquisition else None,
        "successes": len(successes),
        "failures": len(failures),
        "pending": 0 if data.X_pending is None else len(data.X_pending),
        "fit": fit,
        "points": points,
        "seconds": time.perf_counter() - t0,
    }


def _acquisition_name(agent: BayesianAgent) -> dict[str, Any]:
    multi = agent.goals.multi
    constrained = bool(agent.goals.constraints) or bool(agent.ledger.with_status("failed"))
    if agent.settings.ucb_beta is not None and not multi and not constrained:
        return {"name": f"qUCB (β = {agent.settings.ucb_beta:g})", "log": False}
    return {"name": "qLogNEHVI" if multi else "qLogNEI", "log": True}


def pareto_view(agent: BayesianAgent) -> dict[str, Any]:
    """The observed designs in the plane of a multi-objective agent's two objectives, the front marked.

    Every completed trial with both objectives known is a point (natural units; feasible or not); the
    front is the non-dominated set of the feasible ones (`agents.outcomes.pareto_mask` on signed values).
    """
    if not agent.goals.multi:
        raise ModelViewError("a Pareto front needs a multi-objective agent (mode='multi')")
    first, second = agent.goals.objectives
    rows = []
    for trial in agent.ledger.with_status("completed"):
        v = agent.outcome_values(trial)
        if v[first.name] is None or v[second.name] is None:
            continue
        rows.append((trial, v, feasible(agent.goals, v)))
    front = np.zeros(len(rows), dtype=bool)
    ok = [i for i, (_, _, f) in enumerate(rows) if f]
    if ok:
        Y = np.array([[o.sign * rows[i][1][o.name] for o in (first, second)] for i in ok])  # type: ignore[operator]
        front[np.asarray(ok)[pareto_mask(Y)]] = True
    return {
        "objectives": [{"name": o.name, "direction": o.direction} for o in (first, second)],
        "points": [
            {
                "id": t.id,
                first.name: v[first.name],
                second.name: v[second.name],
                "feasible": f,
                "front": bool(front[i]),
            }
            for i, (t, v, f) in enumerate(rows)
        ],
    }


def finite(values: list[float] | None) -> list[float | None] | None:
    """JSON-safe: non-finite numbers (a log-acquisition of −inf far from anything) become None."""
    if values is None:
        return None
    return [v if math.isfinite(v) else None for v in values]
