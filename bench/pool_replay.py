"""Replay a real experimental dataset as a pool, with the protocol of Liang et al. (2021).

Liang et al., "Benchmarking the performance of Bayesian optimization across multiple experimental
materials science domains", npj Comput. Mater. 7, 188 (2021): the unique designs of a table form a pool;
per seed, 2 random experiments, then one per cycle, each chosen by the optimiser among the designs not
yet measured. The yardstick is the fraction of the top-5 % designs found against the number of
experiments, compared with random sampling of the same pool:

- top-5 %: the best ceil(5 % of unique designs) by the target (replicate rows averaged first);
- EF(n) = Top%(BO, n) / Top%(random, n), on the mean curves over seeds (random also as n / N, its
  hypergeometric expectation);
- AF(a) = experiments random needs / experiments BO needs to find a fraction a of the top designs
  (medians over seeds; AF50 at a = ½). The analytic random count is the negative hypergeometric.

The Bayesian agent runs in pool mode (`BayesianAgent(PoolSpace(...))`, n_initial = 2, no constraints).
`agents.baselines.RandomAgent` draws points of the continuous box, not pool rows, so the random baseline
is what the paper's is: a seeded shuffle of the pool. Inputs are every column other than the target.

    .venv/bin/python bench/pool_replay.py DATASET.csv --target COLUMN (--maximize | --minimize)
        [--seeds N] [--json] [--quick] [--plot OUT.png] [--until-exhausted] [--log-target]
        [--ucb-beta B] [--input-warping] [--exploit-every K]
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

TOP_FRACTION = 0.05
N_INITIAL = 2
MIN_UNIQUE = 10
EF_AT = (5, 10, 20, 30, 50, 100)


class PoolError(ValueError):
    """Bad input: reported as one line on stderr, exit status 2."""


@dataclass(frozen=True)
class Pool:
    """The unique designs of a table (`X`, columns in `columns` order) and their mean target `y`."""

    columns: tuple[str, ...]
    X: np.ndarray
    y: np.ndarray
    n_rows: int
    target: str


@dataclass
class Replay:
    """One seed of one agent: top designs found after each experiment, and the BO's decision times."""

    found: np.ndarray
    latencies: list[float]
    fallbacks: int = 0


# -- the dataset ---------------------------------------------------------------------------------------


def read_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a CSV file (a UTF-8 BOM is dropped)."""
    if not path.is_file():
        raise PoolError(f"no such file: {path}")
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            rows = [r for r in csv.reader(fh) if any(cell.strip() for cell in r)]
    except (UnicodeDecodeError, csv.Error) as exc:
        raise PoolError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise PoolError(f"{path}: empty file")
    return [h.strip() for h in rows[0]], rows[1:]


def parse_numbers(path: Path, header: list[str], rows: list[list[str]]) -> np.ndarray:
    """The table as floats; a non-numeric or non-finite cell is an error naming its line and column."""
    values = np.empty((len(rows), len(header)))
    for i, row in enumerate(rows):
        line = i + 2
        if len(row) != len(header):
            raise PoolError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
        for j, cell in enumerate(row):
            try:
                values[i, j] = float(cell)
            except ValueError:
                raise PoolError(f"{path}:{line}: {header[j]} = {cell.strip()!r} is not a number") from None
            if not math.isfinite(values[i, j]):
                raise PoolError(f"{path}:{line}: {header[j]} = {cell.strip()!r} is not finite")
    return values


def load_pool(path: Path, target: str) -> Pool:
    """Unique designs (inputs = every column but `target`) with replicate rows averaged."""
    header, rows = read_table(path)
    if len(set(header)) != len(header):
        raise PoolError(f"{path}: duplicate column names in the header")
    if target not in header:
        raise PoolError(f"{path}: no column {target!r}; columns are {', '.join(map(repr, header))}")
    if len(header) < 2:
        raise PoolError(f"{path}: no input columns besides the target {target!r}")
    values = parse_numbers(path, header, rows)
    j = header.index(target)
    X_rows, y_rows = np.delete(values, j, axis=1), values[:, j]
    X, inverse = np.unique(X_rows, axis=0, return_inverse=True)
    inverse = inverse.ravel()
    y = np.bincount(inverse, weights=y_rows) / np.bincount(inverse)
    if len(X) < MIN_UNIQUE:
        raise PoolError(f"{path}: {len(X)} unique designs; a replay needs at least {MIN_UNIQUE}")
    columns = tuple(h for h in header if h != target)
    return Pool(columns, X, y, len(rows), target)


def top_mask(y: np.ndarray, direction: str, fraction: float = TOP_FRACTION) -> np.ndarray:
    """The best ceil(fraction · n) designs (ties broken by table order)."""
    n_top = math.ceil(fraction * len(y))
    order = np.argsort(y if direction == "min" else -y, kind="stable")
    mask = np.zeros(len(y), dtype=bool)
    mask[order[:n_top]] = True
    return mask


def objective_name(target: str, columns: tuple[str, ...]) -> str:
    """The target as an outcome name for the agent: word characters only, distinct from every input."""
    name = re.sub(r"\W+", "_", target).strip("_") or "target"
    while name in columns:
        name += "_target"
    return name


# -- the replays ---------------------------------------------------------------------------------------


def replay_bayesian(
    pool: Pool,
    top: np.ndarray,
    direction: str,
    seed: int,
    *,
    until_exhausted: bool = False,
    log_target: bool = False,
    ucb_beta: float | None = None,
    input_warping: bool = False,
    exploit_every: int | None = None,
) -> Replay:
    """The Bayesian agent in pool mode, one experiment per cycle, until all top designs are found."""
    from agents.bayesian import BayesianAgent
    from agents.box_space import PoolSpace

    name = objective_name(pool.target, pool.columns)
    agent = BayesianAgent(
        PoolSpace(list(pool.columns), pool.X),
        seed=seed,
        n_initial=N_INITIAL,
        objective=name,
        direction=direction,
        constraints=(),
        settings={"ucb_beta": ucb_beta, "input_warping": input_warping, "exploit_every": exploit_every},
    )
    row_of = {tuple(float(v) for v in x): i for i, x in enumerate(pool.X)}
    observed = np.log(pool.y) if log_target else pool.y
    found, latencies, fallbacks, count = [], [], 0, 0
    while len(found) < len(pool.y) and (until_exhausted or count < top.sum()):
        t0 = time.perf_counter()
        batch = agent.suggest(1)
        elapsed = time.perf_counter() - t0
        if not batch:
            break  # the agent's pool ran out (rows that encode identically count once)
        if agent.last_info.get("bayesian"):
            latencies.append(elapsed)
        fallbacks += agent.last_info.get("fallback") is not None
        i = row_of[tuple(batch[0][c] for c in pool.columns)]
        agent.ingest([{**batch[0], name: float(observed[i])}])
        count += int(top[i])
        found.append(count)
    return Replay(np.array(found), latencies, fallbacks)


def replay_random(top: np.ndarray, seed: int) -> Replay:
    """Random sampling of the pool without replacement (a seeded shuffle), to the last design."""
    order = np.random.default_rng(seed).permutation(len(top))
    return Replay(np.cumsum(top[order]), [])


def fraction_curves(replays: list[Replay], n_pool: int, n_top: int) -> np.ndarray:
    """(seeds, n_pool) fraction of the top designs found after 1..n_pool experiments (held after a stop)."""
    curves = np.empty((len(replays), n_pool))
    for s, r in enumerate(replays):
        curves[s, : len(r.found)] = r.found
        curves[s, len(r.found) :] = r.found[-1] if len(r.found) else 0
    return curves / n_top


def experiments_to(curve: np.ndarray, fraction: float) -> float:
    """Experiments needed to reach `fraction` of the top designs (inf if never)."""
    hit = np.flatnonzero(curve >= fraction - 1e-12)
    return float(hit[0] + 1) if len(hit) else math.inf


def random_expectation(n_pool: int, n_top: int, k: int) -> dict[str, float]:
    """Experiments random sampling needs to find k of the n_top: mean and median (negative hypergeometric)."""
    from scipy.stats import hypergeom

    n = np.arange(1, n_pool + 1)
    reached = hypergeom.sf(k - 1, n_pool, n_top, n)  # P(at least k found after n experiments)
    return {"mean": k * (n_pool + 1) / (n_top + 1), "median": float(n[np.argmax(reached >= 0.5)])}


# -- the summary ---------------------------------------------------------------------------------------


def _median(values: list[float]) -> float | None:
    m = float(np.median(values))
    return m if math.isfinite(m) else None


def _quartiles(values: list[float]) -> list[float | None]:
    return [float(q) if math.isfinite(q) else None for q in np.percentile(values, [25, 75])]


def agent_summary(curves: np.ndarray, half: float) -> dict[str, Any]:
    to_half = [experiments_to(c, half) for c in curves]
    to_all = [experiments_to(c, 1.0) for c in curves]
    return {
        "median_to_half": _median(to_half),
        "iqr_to_half": _quartiles(to_half),
        "median_to_all": _median(to_all),
        "iqr_to_all": _quartiles(to_all),
        "per_seed_to_half": [None if math.isinf(v) else int(v) for v in to_half],
        "per_seed_to_all": [None if math.isinf(v) else int(v) for v in to_all],
    }


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def ef_summary(bo: np.ndarray, rnd: np.ndarray) -> dict[str, Any]:
    """EF at a few n (mean curves; random measured and analytic n / N) and the analytic peak."""
    n_pool = bo.shape[1]
    n = np.arange(1, n_pool + 1)
    bo_mean, rnd_mean, expected = bo.mean(axis=0), rnd.mean(axis=0), n / n_pool
    points = {}
    for k in (k for k in EF_AT if k <= n_pool):
        measured = bo_mean[k - 1] / rnd_mean[k - 1] if rnd_mean[k - 1] > 0 else None
        points[str(k)] = {"measured": measured, "analytic": bo_mean[k - 1] / expected[k - 1]}
    ef = bo_mean / expected
    peak = int(np.argmax(ef[N_INITIAL:]) + N_INITIAL)  # the random start cannot beat random
    return {"at": points, "peak_analytic": float(ef[peak]), "peak_at": peak + 1}


def summarize(pool: Pool, top: np.ndarray, bo: list[Replay], rnd: list[Replay]) -> dict[str, Any]:
    n_pool, n_top = len(pool.y), int(top.sum())
    half_k = math.ceil(n_top / 2)
    half = half_k / n_top
    bo_curves, rnd_curves = fraction_curves(bo, n_pool, n_top), fraction_curves(rnd, n_pool, n_top)
    agents = {"bayesian": agent_summary(bo_curves, half), "random": agent_summary(rnd_curves, half)}
    analytic = {
        "to_half": random_expectation(n_pool, n_top, half_k),
        "to_all": random_expectation(n_pool, n_top, n_top),
    }
    latencies = [t for r in bo for t in r.latencies]
    b, r = agents["bayesian"], agents["random"]
    return {
        "n_rows": pool.n_rows,
        "n_unique": n_pool,
        "n_top": n_top,
        "half": {"designs": half_k, "fraction": half},
        "agents": agents,
        "random_analytic": analytic,
        "af50": _ratio(r["median_to_half"], b["median_to_half"]),
        "af50_analytic": _ratio(analytic["to_half"]["median"], b["median_to_half"]),
        "af100": _ratio(r["median_to_all"], b["median_to_all"]),
        "af100_analytic": _ratio(analytic["to_all"]["median"], b["median_to_all"]),
        "ef": ef_summary(bo_curves, rnd_curves),
        "decision_latency_median_s": statistics.median(latencies) if latencies else None,
        "decision_latency_max_s": max(latencies) if latencies else None,
        "fallbacks": sum(x.fallbacks for x in bo),
        "_curves": {"bayesian": bo_curves, "random": rnd_curves},
    }


# -- output --------------------------------------------------------------------------------------------


def plot_curves(summary: dict[str, Any], title: str, out: Path) -> None:
    """Fraction of the top designs found vs experiments: median and IQR band per agent, random's n / N."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    n_pool = summary["n_unique"]
    n = np.arange(1, n_pool + 1)
    for key, label, colour in (("bayesian", "Bayesian agent (pool)", "C0"), ("random", "random (shuffle)", "C7")):
        curves = summary["_curves"][key]
        lo, mid, hi = np.percentile(curves, [25, 50, 75], axis=0)
        ax.fill_between(n, lo, hi, step="post", color=colour, alpha=0.25, linewidth=0)
        ax.step(n, mid, where="post", color=colour, label=f"{label}: median, IQR")
    ax.plot(n, n / n_pool, "k--", linewidth=0.8, label="random, expected (n / N)")
    half = summary["half"]
    ax.axhline(half["fraction"], color="k", linewidth=0.4, alpha=0.5)
    ax.annotate(f"half: {half['designs']} of {summary['n_top']}", (1, half["fraction"]), fontsize=7, va="bottom")
    ax.set_xlim(0, n_pool)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("experiments")
    ax.set_ylabel(f"fraction of the top-5 % found ({summary['n_top']} designs)")
    af = summary["af50"]
    ax.set_title(f"{title}  (AF50 = {af:.1f})" if af else title, fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    plt.close(fig)


def _fmt(v: float | None, spec: str = ".0f") -> str:
    return "—" if v is None else format(v, spec)


def print_table(s: dict[str, Any]) -> None:
    print(
        f"{s['dataset']}: {s['target']!r} ({s['direction']}), {s['n_rows']} rows → {s['n_unique']} unique designs,"
        f" top-5 % = {s['n_top']} designs; {s['seeds']} seeds; stop: {s['stop']}"
    )
    half = f"{s['half']['designs']} of {s['n_top']} (median [IQR])"
    print(f"{'experiments to find':<34} {half:>26} {'all (median [IQR])':>22}")
    for key, label in (("bayesian", "Bayesian agent (pool mode)"), ("random", "random (seeded shuffle)")):
        a = s["agents"][key]
        h = f"{_fmt(a['median_to_half'], '.1f')} [{_fmt(a['iqr_to_half'][0])}–{_fmt(a['iqr_to_half'][1])}]"
        f = f"{_fmt(a['median_to_all'], '.1f')} [{_fmt(a['iqr_to_all'][0])}–{_fmt(a['iqr_to_all'][1])}]"
        print(f"{label:<34} {h:>26} {f:>22}")
    ra = s["random_analytic"]
    h = f"{ra['to_half']['median']:.0f} (mean {ra['to_half']['mean']:.1f})"
    f = f"{ra['to_all']['median']:.0f} (mean {ra['to_all']['mean']:.1f})"
    print(f"{'random, hypergeometric (median)':<34} {h:>26} {f:>22}")
    print(
        f"AF50 = {_fmt(s['af50'], '.2f')} (vs analytic random {_fmt(s['af50_analytic'], '.2f')});"
        f" AF100 = {_fmt(s['af100'], '.2f')} (analytic {_fmt(s['af100_analytic'], '.2f')})"
    )
    ef = s["ef"]
    cells = [f"n={k}: {_fmt(v['measured'], '.2f')} ({v['analytic']:.2f})" for k, v in ef["at"].items()]
    print("EF measured (vs n/N): " + ", ".join(cells) + f"; peak {ef['peak_analytic']:.2f} at n={ef['peak_at']}")
    print(
        f"decision latency median {_fmt(s['decision_latency_median_s'], '.3f')} s"
        f" (max {_fmt(s['decision_latency_max_s'], '.3f')} s), fallbacks {s['fallbacks']}; wall {s['wall_s']:.0f} s"
    )


# -- command line --------------------------------------------------------------------------------------


def add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """DATASET.csv --target COLUMN (--maximize | --minimize): a pool and its goal (`args.direction`)."""
    parser.add_argument("dataset", type=Path, help="CSV: one target column, every other column an input")
    parser.add_argument("--target", required=True, help="the column to optimise")
    goal = parser.add_mutually_exclusive_group(required=True)
    goal.add_argument("--maximize", dest="direction", action="store_const", const="max")
    goal.add_argument("--minimize", dest="direction", action="store_const", const="min")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_dataset_arguments(parser)
    parser.add_argument("--seeds", type=int, default=None, help="seeds 0..N-1 (default 50 as in the paper; 3 quick)")
    parser.add_argument("--json", action="store_true", help="one summary object on stdout")
    parser.add_argument("--quick", action="store_true", help="3 seeds (under 2 minutes on the largest dataset)")
    parser.add_argument("--plot", type=Path, help="PNG of the top-5 %% found vs experiments")
    parser.add_argument("--until-exhausted", action="store_true", help="run BO to the end of the pool")
    parser.add_argument("--log-target", action="store_true", help="show the agent log(target) (not the paper's)")
    parser.add_argument(
        "--ucb-beta", type=float, help="the agent's qUCB with this β instead of qLogNEI (the paper's GP used LCB)"
    )
    parser.add_argument(
        "--exploit-every",
        type=int,
        help="every K-th model-based pick maximises the posterior mean (0: never; default: the agent's, 2 for pools)",
    )
    parser.add_argument(
        "--input-warping", action="store_true", help="the GPs learn an input warping (off by default for pools)"
    )
    return parser.parse_args(argv)


def check_args(args: argparse.Namespace, pool: Pool) -> None:
    if args.seeds < 1:
        raise PoolError(f"--seeds must be at least 1, got {args.seeds}")
    if args.plot is not None and not args.plot.parent.resolve().is_dir():
        raise PoolError(f"--plot: no such directory: {args.plot.parent}")
    if args.ucb_beta is not None and not args.ucb_beta > 0:
        raise PoolError(f"--ucb-beta must be positive, got {args.ucb_beta}")
    if args.exploit_every is not None and args.exploit_every < 0:
        raise PoolError(f"--exploit-every must be at least 0 (0: never), got {args.exploit_every}")
    if args.log_target and np.any(pool.y <= 0):
        raise PoolError(f"--log-target needs a positive target; {args.target!r} has values ≤ 0")


def run(args: argparse.Namespace, pool: Pool) -> dict[str, Any]:
    """Both agents over seeds 0..seeds-1 with a progress bar on stderr; the summary (with curves)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    top = top_mask(pool.y, args.direction)
    bo, rnd = [], []
    t0 = time.perf_counter()
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True)) as progress:
        task = progress.add_task(f"{args.dataset.name} seeds", total=args.seeds)
        for seed in range(args.seeds):
            kwargs = {
                "until_exhausted": args.until_exhausted,
                "log_target": args.log_target,
                "ucb_beta": args.ucb_beta,
                "input_warping": args.input_warping,
                "exploit_every": args.exploit_every,
            }
            bo.append(replay_bayesian(pool, top, args.direction, seed, **kwargs))
            rnd.append(replay_random(top, seed))
            progress.advance(task)
    summary = {
        "dataset": args.dataset.name,
        "target": args.target,
        "direction": args.direction,
        "seeds": args.seeds,
        "stop": "pool exhausted" if args.until_exhausted else "all top-5 % found",
        "log_target": args.log_target,
        "input_warping": args.input_warping,
        "exploit_every": args.exploit_every,
        "acquisition": "qLogNEI" if args.ucb_beta is None else f"qUCB beta={args.ucb_beta:g}",
        **summarize(pool, top, bo, rnd),
    }
    summary["wall_s"] = time.perf_counter() - t0
    summary["load_average_1min"] = os.getloadavg()[0]
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.seeds is None:
        args.seeds = 3 if args.quick else 50
    try:
        pool = load_pool(args.dataset, args.target)
        check_args(args, pool)
    except PoolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    summary = run(args, pool)
    if args.plot is not None:
        plot_curves(summary, f"{args.dataset.stem}: {args.target}", args.plot)
    summary.pop("_curves")
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print_table(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
