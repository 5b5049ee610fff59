"""Decision latency of the Bayesian agent: `suggest(4)` at 50, 100 and 200 observations, against anchors.

The campaign: every route free (11 features: 8 continuous axes + the route one-hot), trapped field
maximised subject to Tc ≥ 30 K; observations are Sobol recipes answered by the simulators' noiseless
truth (`World()`), so the landscape is the real one.

- **agent, cold**: the first `suggest(4)` after ingesting n observations (GPs fitted from scratch, as
  after a restart without a checkpoint).
- **agent, warm**: the steady state of a campaign: ingest the last batch, `suggest(4)` again (fits start
  from the last hyperparameters). Median of the repeats.
- **anchor, Sobol**: `SobolAgent.suggest(4)`, no model: the floor.
- **anchor, botorch default**: the tutorial recipe on the same encoded data: `SingleTaskGP` (default
  transforms) fitted from scratch with `fit_gpytorch_mll`, `qLogNoisyExpectedImprovement`,
  `optimize_acqf(q=4, num_restarts=10, raw_samples=512)` — one objective, no constraint, no pending
  points, the route one-hot relaxed to [0, 1] (the plain recipe has no categorical). It does less than
  the agent; the ratio agent / anchor says what the agent's budgets buy.

Before anything, `warm_up()` is timed in this fresh process (what a service pays once at start).

    .venv/bin/python bench/agent_latency.py [--quick] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import warnings
from typing import Any

import numpy as np
import torch

from agents.baselines import SobolAgent
from agents.bayesian import BayesianAgent, warm_up
from agents.space import RecipeSpace
from simulators.truth import evaluate
from simulators.world import World

Q = 4


def observe(world: World, points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for p in points:
        recipe = {k: v for k, v in p.items() if k != "_id"}
        props = evaluate(world, **recipe).properties
        out.append({**p, "trapped_field_t": props.trapped_field_t, "tc_k": props.tc_k})
    return out


def initial_observations(world: World, n: int, seed: int) -> list[dict[str, Any]]:
    designs = SobolAgent(RecipeSpace(), seed=seed, constraints=()).suggest(n)
    return [{k: v for k, v in p.items() if k != "_id"} for p in observe(world, designs)]


def time_agent(world: World, observations: list[dict[str, Any]], repeats: int) -> dict[str, float]:
    agent = BayesianAgent(RecipeSpace(), seed=0)
    agent.ingest(observations)
    t0 = time.perf_counter()
    batch = agent.suggest(Q)
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(repeats):
        agent.ingest(observe(world, batch))
        t0 = time.perf_counter()
        batch = agent.suggest(Q)
        warm.append(time.perf_counter() - t0)
        assert agent.last_info["fallback"] is None, agent.last_info
    return {"cold_s": cold, "warm_s": statistics.median(warm), "warm_fit_s": agent.last_info["fit_seconds"]}


def time_sobol(observations: list[dict[str, Any]], repeats: int) -> float:
    agent = SobolAgent(RecipeSpace(), seed=0)
    agent.ingest(observations)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        agent.suggest(Q)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_botorch_default(observations: list[dict[str, Any]], repeats: int) -> float:
    """The tutorial recipe, from scratch each time (as a loop that refits per iteration does)."""
    from botorch.acquisition.logei import qLogNoisyExpectedImprovement
    from botorch.fit import fit_gpytorch_mll
    from botorch.models import SingleTaskGP
    from botorch.models.transforms import Normalize, Standardize
    from botorch.optim import optimize_acqf
    from gpytorch.mlls import ExactMarginalLogLikelihood

    space = RecipeSpace()
    X = torch.tensor(space.encode(observations), dtype=torch.float64)
    Y = torch.tensor([[o["trapped_field_t"]] for o in observations], dtype=torch.float64)
    bounds = torch.stack([torch.zeros(X.shape[-1]), torch.ones(X.shape[-1])]).double()
    times = []
    for i in range(repeats):
        torch.manual_seed(i)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = SingleTaskGP(X, Y, input_transform=Normalize(X.shape[-1]), outcome_transform=Standardize(1))
            fit_gpytorch_mll(ExactMarginalLogLikelihood(model.likelihood, model))
            acq = qLogNoisyExpectedImprovement(model, X_baseline=X)
            optimize_acqf(acq, bounds=bounds, q=Q, num_restarts=10, raw_samples=512)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50 and 200 observations, fewer repeats (< 2 min)")
    parser.add_argument("--json", action="store_true", help="one summary object on stdout")
    args = parser.parse_args()
    levels = (50, 200) if args.quick else (50, 100, 200)
    repeats = 2 if args.quick else 5
    anchor_repeats = 1 if args.quick else 3

    warm_up_s = warm_up(RecipeSpace())
    world = World()
    rows = []
    for n in levels:
        observations = initial_observations(world, n, seed=n)
        agent = time_agent(world, observations, repeats)
        sobol = time_sobol(observations, repeats)
        default = time_botorch_default(observations, anchor_repeats)
        rows.append(
            {
                "n_obs": n,
                "agent_cold_s": agent["cold_s"],
                "agent_warm_s": agent["warm_s"],
                "agent_warm_fit_s": agent["warm_fit_s"],
                "sobol_s": sobol,
                "botorch_default_s": default,
                "warm_vs_default": agent["warm_s"] / default,
                "cold_vs_default": agent["cold_s"] / default,
            }
        )
    summary = {
        "q": Q,
        "quick": args.quick,
        "warm_up_s": warm_up_s,
        "torch_threads": torch.get_num_threads(),
        "load_average_1min": os.getloadavg()[0],
        "levels": rows,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"suggest({Q}) on RecipeSpace() (all routes, Tc ≥ 30 K), seconds; warm_up() took {warm_up_s:.2f} s")
    header = ("n_obs", "agent warm", "(fit)", "agent cold", "Sobol", "botorch default", "warm/default")
    print("{:>6} {:>11} {:>7} {:>11} {:>8} {:>16} {:>13}".format(*header))
    for r in rows:
        print(
            f"{r['n_obs']:>6} {r['agent_warm_s']:11.2f} {r['agent_warm_fit_s']:7.2f} {r['agent_cold_s']:11.2f}"
            f" {r['sobol_s']:8.4f} {r['botorch_default_s']:16.2f} {r['warm_vs_default']:13.2f}"
        )
    print(f"(load average {summary['load_average_1min']:.2f} on {os.cpu_count()} cores while measuring)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
