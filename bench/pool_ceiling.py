"""How far down the agent's model ranks a pool's best designs when it has seen every other design.

A companion to `bench/pool_replay.py` (same CSV shape, same pool: unique designs, replicates averaged,
top-5 % by the target). The Bayesian agent's pool-mode GP (`agents.bayesian.model.fit_gp`: ARD RBF on
the unit cube, standardised target, learned noise, no warping) is fitted to the whole pool; then every
design is predicted from all the others (closed-form leave-one-out with those hyperparameters) and the
pool is ranked by that prediction. Reported:

- the leave-one-out rank of each top design: how far down the model's list it sits with the other
  designs all measured — the most any agent that picks by this model could know about it;
- "picks to half": the ⌈n_top / 2⌉-th smallest of those ranks, and random's median experiments to half
  (negative hypergeometric) divided by it — the AF50 that perfect knowledge of the rest would give;
- Spearman's ρ between the leave-one-out predictions and the targets.

A replay agent starts from two designs and knows far less, so it needs more than "picks to half" unless
it is lucky. Where that AF50 is not far above a target, meeting the target asks the agent to learn the
pool from a handful of designs almost as well as from all of them; the agent's AF50 as a share of this
one, on pools where it does meet its target, says how much of that to expect (docs/benchmarks.md).

    .venv/bin/python bench/pool_ceiling.py DATASET.csv --target COLUMN (--maximize | --minimize)
        [--json] [--quick]

The run takes seconds; `--quick` is accepted for uniformity with the other bench scripts and changes
nothing.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch
from botorch.models import SingleTaskGP
from scipy.stats import spearmanr

from agents.bayesian.model import HyperparameterStore, fit_gp
from agents.bayesian.settings import AcquisitionSettings
from agents.box_space import PoolSpace, rows_to_points

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pool_replay import Pool, PoolError, add_dataset_arguments, load_pool, random_expectation, top_mask


def fit_pool_gp(pool: Pool, direction: str) -> SingleTaskGP:
    """The agent's pool-mode GP fitted to the whole pool (target signed so that larger is better)."""
    space = PoolSpace(list(pool.columns), pool.X)
    X = torch.as_tensor(space.encode(rows_to_points(space, pool.X)), dtype=torch.float64)
    y = torch.as_tensor(-pool.y if direction == "min" else pool.y, dtype=torch.float64)
    settings = AcquisitionSettings()
    gp, _ = fit_gp("objective", X, y, HyperparameterStore(), (settings.fit_maxiter, settings.warm_fit_maxiter))
    return gp


def leave_one_out_means(gp: SingleTaskGP) -> np.ndarray:
    """Each training point's predictive mean from all the others, on the GP's standardised scale,
    with its hyperparameters held: y_i − [K⁻¹(y − m)]_i / [K⁻¹]_ii, K including the noise."""
    with torch.no_grad():
        (X,) = gp.train_inputs
        K = gp.covar_module(X).to_dense() + gp.likelihood.noise * torch.eye(len(X), dtype=X.dtype)
        K_inv = torch.linalg.inv(K)
        y = gp.train_targets
        loo = y - (K_inv @ (y - gp.mean_module.constant)) / torch.diagonal(K_inv)
    return loo.numpy()


def ceiling(pool: Pool, direction: str) -> dict[str, Any]:
    """The summary object: leave-one-out ranks of the top designs, picks to half, the AF50 they give."""
    top = top_mask(pool.y, direction)
    loo = leave_one_out_means(fit_pool_gp(pool, direction))
    rank = np.empty(len(loo), dtype=int)
    rank[np.argsort(-loo, kind="stable")] = np.arange(1, len(loo) + 1)
    top_ranks = sorted(int(r) for r in rank[top])
    n_top = int(top.sum())
    half = math.ceil(n_top / 2)
    picks = top_ranks[half - 1]
    random_half = random_expectation(len(pool.y), n_top, half)["median"]
    signed = -pool.y if direction == "min" else pool.y
    return {
        "target": pool.target,
        "direction": direction,
        "designs": len(pool.y),
        "rows": pool.n_rows,
        "top_designs": n_top,
        "top_loo_ranks": top_ranks,
        "picks_to_half": picks,
        "random_to_half_median": random_half,
        "af50_with_the_rest_known": round(random_half / picks, 2),
        "spearman_loo": round(float(spearmanr(loo, signed).statistic), 3),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_dataset_arguments(p)
    p.add_argument("--json", action="store_true", help="print one summary object instead of the table")
    p.add_argument("--quick", action="store_true", help="accepted for uniformity; the run is already short")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        pool = load_pool(args.dataset, args.target)
    except PoolError as exc:
        print(f"pool_ceiling: {exc}", file=sys.stderr)
        return 2
    summary = {"dataset": args.dataset.name, **ceiling(pool, args.direction)}
    if args.json:
        print(json.dumps(summary))
        return 0
    s = summary
    print(
        f"{s['dataset']}: {s['designs']} designs ({s['rows']} rows),"
        f" top {s['top_designs']} by {s['target']} ({s['direction']})"
    )
    print(f"  leave-one-out ranks of the top designs: {', '.join(map(str, s['top_loo_ranks']))}")
    print(
        f"  picks to half with the rest known: {s['picks_to_half']}; random's median {s['random_to_half_median']:g}"
        f" → AF50 {s['af50_with_the_rest_known']:.2f}"
    )
    print(f"  Spearman ρ (leave-one-out prediction vs target): {s['spearman_loo']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
