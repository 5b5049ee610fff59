"""Closed-loop campaigns: grainloop's Bayesian agent against Sobol, random and Ax's `Client`, per world.

Every agent runs one trial at a time on the same `RecipeSpace()` (all routes, every axis free; trapped
field maximised subject to Tc ≥ 30 K) against `controller.instant_lab` — the simulated lab's process
model and property-station noise without the instruments' dynamics — so that hundreds of campaigns fit
in minutes. Each world's optimum comes from `controller.yardstick.world_optimum` in the same run.

A campaign *reaches* f of the optimum at the first experiment whose recipe truly traps ≥ f · optimum
with a true Tc ≥ 30 K. Reported per world and agent, over seeds:

- experiments to reach 70, 80, 90 and 95 % (median; campaigns that did not reach it within their budget count
  as "more than the budget", so a median above the budget prints as "> budget");
- the true trapped field of the incumbent (best measured feasible sample, what the agent would
  recommend) after 20 and after `--budget` experiments, as a fraction of the optimum;
- acceleration factor vs random and vs Sobol: experiments the baseline needs ÷ experiments the agent
  needs (medians), at each fraction. Random and Sobol also run a long campaign (`--baseline-budget`) to measure
  what they need: random's expected count is total draws ÷ hits pooled over seeds (the geometric
  distribution's estimate); with no hit it is a lower bound (printed with "≥");
- decision latency: median seconds per proposed recipe (random and Sobol propose in chunks).

    .venv/bin/python bench/campaign.py [--seeds 10] [--first-seed 0] [--budget 40] [--agents bayes,ax,sobol,random]
        [--worlds default,volatile-k] [--jobs 2] [--bayes-settings JSON] [--plot docs/img/campaign_bench.png]
        [--quick] [--json]
    .venv/bin/python bench/campaign.py --from-json A.json [B.json …] [--plot OUT.png]   # re-print saved runs

Ax is optional (`pip install -e '.[bench]'`); without it the Ax rows are skipped with a note.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import multiprocessing
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import Progress

from agents.space import RecipeSpace
from controller.campaign.agent_factory import AGENTS
from controller.instant_lab import instant_experiment
from controller.yardstick import world_optimum
from simulators.world import World, load_world

ROOT = Path(__file__).resolve().parent.parent
WORLDS = {"default": None, "volatile-k": ROOT / "examples/worlds/volatile-k.toml"}
LEVELS = (0.70, 0.80, 0.90, 0.95)
MIN_TC_K = 30.0
BASELINE_CHUNK = 512
LONG_RUN_AGENTS = ("sobol", "random")
"""Baselines that run `--baseline-budget` experiments, proposed in chunks of `BASELINE_CHUNK`."""


@dataclass
class Campaign:
    """One campaign's record: per experiment, the true value and the incumbent's true value."""

    true_t: list[float] = field(default_factory=list)
    incumbent_true_t: list[float] = field(default_factory=list)
    suggest_s: list[float] = field(default_factory=list)

    def reached(self, threshold_t: float) -> int | None:
        """1-based experiment at which a recipe truly trapping ≥ threshold was made; None if never."""
        return next((i + 1 for i, v in enumerate(self.true_t) if v >= threshold_t), None)


def make_agent(kind: str, seed: int, bayes_settings: dict[str, Any] | None = None) -> Any:
    """A campaign's agent (`controller.campaign.agent_factory.AGENTS`, default Tc ≥ 30 K) or the Ax anchor.

    `bayes_settings`: `AcquisitionSettings` fields for the Bayesian agent (ablations), else its defaults.
    """
    space = RecipeSpace()
    if kind in AGENTS:
        options = {"settings": bayes_settings} if kind == "bayes" and bayes_settings else {}
        return AGENTS[kind](space, seed=seed, **options)
    if kind == "ax":
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from ax_client_agent import AxClientAgent

        return AxClientAgent(space, seed=seed, min_tc_k=MIN_TC_K)
    raise ValueError(f"unknown agent {kind!r}")


def run_campaign(agent: Any, world: World, budget: int, seed: int, batch: int = 1) -> Campaign:
    """Suggest → experiment → ingest, `batch` recipes per round, `budget` experiments."""
    rng = np.random.default_rng(10_000 + seed)  # the lab's noise: the same stream for every agent
    record = Campaign()
    best_measured = -math.inf
    incumbent = 0.0
    while len(record.true_t) < budget:
        t0 = time.perf_counter()
        points = agent.suggest(min(batch, budget - len(record.true_t)))
        record.suggest_s.append((time.perf_counter() - t0) / max(len(points), 1))
        outcomes = []
        for point in points:
            result = instant_experiment(world, point, rng)
            true_tc_k, true_t = result.pop("true_tc_k"), result.pop("true_trapped_field_t")
            true_t = true_t if true_tc_k >= MIN_TC_K else 0.0
            outcomes.append({**point, **result})
            if not result["failed"] and result["tc_k"] >= MIN_TC_K and result["trapped_field_t"] > best_measured:
                best_measured, incumbent = result["trapped_field_t"], true_t
            record.true_t.append(true_t)
            record.incumbent_true_t.append(incumbent)
        agent.ingest(outcomes)
    return record


def median_reach(campaigns: list[Campaign], threshold_t: float, budget: int) -> float:
    """Median experiments to reach the threshold; campaigns that never did count as budget + 1."""
    return statistics.median([c.reached(threshold_t) or budget + 1 for c in campaigns])


def random_expectation(campaigns: list[Campaign], threshold_t: float) -> tuple[float, bool]:
    """Expected experiments uniform random sampling needs: total draws ÷ hits, pooled (lower bound if 0 hits)."""
    draws = sum(len(c.true_t) for c in campaigns)
    hits = sum(sum(v >= threshold_t for v in c.true_t) for c in campaigns)
    return (draws / hits, False) if hits else (float(draws), True)


def fmt_reach(value: float, budget: int) -> str:
    return f"> {budget}" if value > budget else f"{value:g}"


def load_named_world(name: str) -> World:
    return load_world(WORLDS[name]) if WORLDS[name] else World()


def one_campaign(
    kind: str, world_name: str, seed: int, budget: int, bayes_settings: dict[str, Any] | None = None
) -> Campaign:
    """One seed's campaign of agent `kind` on the named world (a worker's job)."""
    batch = BASELINE_CHUNK if kind in LONG_RUN_AGENTS else 1
    agent = make_agent(kind, seed, bayes_settings)
    return run_campaign(agent, load_named_world(world_name), budget, seed, batch)


def run_world(name: str, args: argparse.Namespace, agents: list[str], progress: Progress) -> dict[str, Any]:
    world = load_named_world(name)
    task = progress.add_task(f"{name}: optimum", total=None)
    _, optimum = world_optimum(world, maxiter=args.optimum_maxiter)
    opt_t = optimum.trapped_field_t
    results: dict[str, Any] = {"optimum_t": opt_t, "optimum_recipe": optimum.recipe, "agents": {}}
    # fork: workers inherit the parent's imports (and anything an ablation script patched into them)
    with ProcessPoolExecutor(args.jobs, mp_context=multiprocessing.get_context("fork")) as pool:
        for kind in agents:
            budget = args.baseline_budget if kind in LONG_RUN_AGENTS else args.budget
            progress.update(task, description=f"{name}: {kind}", total=len(args.seed_list), completed=0)
            futures = [
                pool.submit(one_campaign, kind, name, seed, budget, args.bayes_settings) for seed in args.seed_list
            ]
            for future in futures:
                future.add_done_callback(lambda _: progress.advance(task))
            campaigns = [future.result() for future in futures]
            results["agents"][kind] = summarise(kind, campaigns, opt_t, args.budget, budget)
    progress.remove_task(task)
    add_acceleration(results["agents"])
    return results


def summarise(kind: str, campaigns: list[Campaign], opt_t: float, budget: int, ran: int) -> dict[str, Any]:
    out: dict[str, Any] = {"seeds": len(campaigns), "experiments_run": ran}
    for level in LEVELS:
        key = f"{round(level * 100)}"
        out[f"reach_{key}_median"] = median_reach(campaigns, level * opt_t, ran)
        out[f"reach_{key}_hits"] = sum(c.reached(level * opt_t) is not None for c in campaigns)
        if kind == "random":
            expected, lower = random_expectation(campaigns, level * opt_t)
            out[f"reach_{key}_expected"], out[f"reach_{key}_lower_bound"] = expected, lower
    for n in sorted({20, budget}):
        values = [c.incumbent_true_t[min(n, len(c.incumbent_true_t)) - 1] / opt_t for c in campaigns]
        out[f"incumbent_at_{n}_median"] = statistics.median(values)
    curve = np.array([c.incumbent_true_t[:budget] for c in campaigns]) / opt_t
    out["curve_median"] = np.median(curve, axis=0).round(4).tolist()
    out["curve_q25"] = np.quantile(curve, 0.25, axis=0).round(4).tolist()
    out["curve_q75"] = np.quantile(curve, 0.75, axis=0).round(4).tolist()
    out["suggest_s_median"] = statistics.median(s for c in campaigns for s in c.suggest_s)
    # per seed, in seed order, so two runs on the same seeds can be compared pairwise
    out["per_seed"] = {
        "reach_90": [c.reached(0.90 * opt_t) for c in campaigns],
        f"incumbent_at_{budget}": [
            round(c.incumbent_true_t[min(budget, len(c.true_t)) - 1] / opt_t, 4) for c in campaigns
        ],
    }
    return out


def add_acceleration(rows: dict[str, dict[str, Any]]) -> None:
    """AF of every model-based agent vs random and Sobol at each level (None when the agent never got there)."""
    for kind, row in rows.items():
        if kind in ("random", "sobol"):
            continue
        for level in LEVELS:
            key = f"{round(level * 100)}"
            mine = row.get(f"reach_{key}_median")
            if mine is None or mine > row["experiments_run"]:
                continue
            if f"reach_{key}_expected" in rows.get("random", {}):
                r = rows["random"]
                row[f"af_{key}_vs_random"] = r[f"reach_{key}_expected"] / mine
                row[f"af_{key}_vs_random_lower_bound"] = r[f"reach_{key}_lower_bound"]
            if f"reach_{key}_median" in rows.get("sobol", {}):
                s = rows["sobol"]
                row[f"af_{key}_vs_sobol"] = s[f"reach_{key}_median"] / mine
                row[f"af_{key}_vs_sobol_lower_bound"] = s[f"reach_{key}_median"] > s["experiments_run"]


def _reach_cell(kind: str, row: dict[str, Any], key: str) -> str:
    if f"reach_{key}_median" not in row:  # a summary saved with other levels
        return "—"
    if kind == "random":
        return ("≥ " if row[f"reach_{key}_lower_bound"] else "") + f"{row[f'reach_{key}_expected']:.0f}"
    return fmt_reach(row[f"reach_{key}_median"], row["experiments_run"])


def _af_cell(row: dict[str, Any], key: str, base: str) -> str:
    value = row.get(f"af_{key}_vs_{base}")
    return "—" if value is None else ("≥ " if row[f"af_{key}_vs_{base}_lower_bound"] else "") + f"{value:.1f}"


def print_table(summary: dict[str, Any]) -> None:
    budget = summary["budget"]
    keys = [f"{round(level * 100)}" for level in LEVELS]
    for name, res in summary["worlds"].items():
        print(f"\nworld {name}: optimum {res['optimum_t']:.3f} T; {summary['seeds']} seeds, budget {budget}")
        print("experiments to reach a fraction of the optimum (median), incumbent's true value (median):")
        header = f"{'agent':8s}" + "".join(f"{'to ' + k + ' %':>10s}" for k in keys)
        marks = sorted({20, budget})
        print(header + "".join(f"{f'best@{n}':>9s}" for n in marks) + f"{'s/recipe':>10s}")
        for kind, row in res["agents"].items():
            cells = "".join(f"{_reach_cell(kind, row, k):>10s}" for k in keys)
            best = "".join(f"{row[f'incumbent_at_{n}_median']:9.0%}" for n in marks)
            print(f"{kind:8s}{cells}{best}{row['suggest_s_median']:10.3f}")
        print("acceleration factor (baseline's experiments ÷ agent's), per fraction of the optimum:")
        print(f"{'agent':8s}{'vs':>8s}" + "".join(f"{k + ' %':>10s}" for k in keys))
        for kind, row in res["agents"].items():
            if kind in ("random", "sobol"):
                continue
            for base in ("random", "sobol"):
                if base in res["agents"]:
                    print(f"{kind:8s}{base:>8s}" + "".join(f"{_af_cell(row, k, base):>10s}" for k in keys))


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    worlds = summary["worlds"]
    fig, axes = plt.subplots(1, len(worlds), figsize=(6 * len(worlds), 4.2), squeeze=False)
    for ax, (name, res) in zip(axes[0], worlds.items(), strict=True):
        for kind, row in res["agents"].items():
            median = np.array(row["curve_median"])
            n = np.arange(1, len(median) + 1)
            (line,) = ax.plot(n, median, label=kind)
            ax.fill_between(n, row["curve_q25"], row["curve_q75"], color=line.get_color(), alpha=0.15)
        for level in LEVELS:
            ax.axhline(level, color="grey", lw=0.6, ls=":")
        ax.set(
            title=f"{name} (optimum {res['optimum_t']:.2f} T)",
            xlabel="experiment",
            ylabel="incumbent's true trapped field / optimum",
            ylim=(0, 1.02),
        )
        ax.legend(loc="lower right")
    fig.suptitle(f"median and IQR over {summary['seeds']} seeds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def merge(summaries: list[dict[str, Any]]) -> dict[str, Any]:
    """One summary from runs with the same seeds and budget but different agents or worlds."""

    def runs(summary: dict[str, Any]) -> tuple[int, int, int]:
        return summary["seeds"], summary.get("first_seed", 0), summary["budget"]

    first = summaries[0]
    for other in summaries[1:]:
        if runs(other) != runs(first):
            raise SystemExit("bench/campaign.py: --from-json summaries differ in seeds or budget")
    merged = {**first, "worlds": {}}
    for summary in summaries:
        for name, res in summary["worlds"].items():
            world = merged["worlds"].setdefault(name, {**res, "agents": {}})
            world["agents"].update(res["agents"])
    for res in merged["worlds"].values():
        add_acceleration(res["agents"])
    return merged


def available_agents(requested: list[str], note: Callable[[str], None]) -> list[str]:
    out = []
    for kind in requested:
        if kind == "ax":
            try:
                import ax  # noqa: F401
            except ImportError:
                note("ax-platform is not installed (pip install -e '.[bench]'): skipping Ax")
                continue
        out.append(kind)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument(
        "--first-seed",
        type=int,
        default=0,
        help="run seeds first-seed, first-seed + 1, … (fresh seeds confirm a result)",
    )
    parser.add_argument("--budget", type=int, default=40, help="experiments per model-based campaign")
    parser.add_argument("--baseline-budget", type=int, default=20_000, help="experiments per random/Sobol campaign")
    parser.add_argument("--agents", default="bayes,ax,sobol,random")
    parser.add_argument("--worlds", default="default,volatile-k")
    parser.add_argument("--jobs", type=int, default=1, help="campaigns run at once (processes, one core each)")
    parser.add_argument(
        "--bayes-settings",
        type=json.loads,
        help="AcquisitionSettings of the Bayesian agent, e.g. '{\"exploit_every\": 3}'",
    )
    parser.add_argument("--optimum-maxiter", type=int, default=80, help="differential-evolution iterations")
    parser.add_argument("--plot", type=Path, help="write the curves to this PNG")
    parser.add_argument("--quick", action="store_true", help="3 seeds, budget 20, one world, no Ax (< 2 min)")
    parser.add_argument("--json", action="store_true", help="one summary object on stdout")
    parser.add_argument(
        "--from-json", type=Path, nargs="+", help="print (and --plot) summaries saved by --json, merged; run nothing"
    )
    args = parser.parse_args()
    if args.from_json:
        summary = merge([json.loads(path.read_text()) for path in args.from_json])
        print_table(summary)
        if args.plot:
            plot(summary, args.plot)
        return
    if args.quick:
        args.seeds, args.budget, args.baseline_budget, args.optimum_maxiter = 3, 20, 2048, 30
        args.agents, args.worlds = "bayes,sobol,random", "default"
    worlds = args.worlds.split(",")
    unknown = [w for w in worlds if w not in WORLDS]
    if unknown or args.seeds < 1 or args.first_seed < 0 or args.budget < 20 or args.jobs < 1:
        parser.error(f"worlds must be among {list(WORLDS)}; --seeds ≥ 1; --first-seed ≥ 0; --budget ≥ 20; --jobs ≥ 1")
    args.seed_list = list(range(args.first_seed, args.first_seed + args.seeds))
    agents = available_agents(args.agents.split(","), lambda m: print(m, file=sys.stderr))

    logging.getLogger("agents").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)  # as the agent itself does; Ax otherwise spins both cores against each other
    t0 = time.perf_counter()
    summary: dict[str, Any] = {
        "seeds": args.seeds,
        "first_seed": args.first_seed,
        "budget": args.budget,
        "baseline_budget": args.baseline_budget,
        "quick": args.quick,
        "bayes_settings": args.bayes_settings,
        "worlds": {},
    }
    with Progress(transient=True) as progress:
        for name in worlds:
            summary["worlds"][name] = run_world(name, args, agents, progress)
    summary["wall_s"] = time.perf_counter() - t0
    summary["load_average_1min"] = os.getloadavg()[0]
    if args.plot:
        plot(summary, args.plot)
    if args.json:
        print(json.dumps(summary))
    else:
        print_table(summary)
        print(f"\nwall {summary['wall_s']:.0f} s" + (f"; plot {args.plot}" if args.plot else ""))


if __name__ == "__main__":
    main()
