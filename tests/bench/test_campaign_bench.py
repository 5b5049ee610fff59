"""bench/campaign.py: the bookkeeping behind its table (reach, random's expectation, acceleration factors)."""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from agents.baselines import SobolAgent
from agents.space import RecipeSpace
from simulators.world import World

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_campaign", ROOT / "bench/campaign.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_reach_is_the_first_experiment_at_or_above_the_threshold(bench: ModuleType) -> None:
    c = bench.Campaign(true_t=[0.1, 0.5, 0.95, 0.2], incumbent_true_t=[0.1, 0.5, 0.95, 0.95])
    assert c.reached(0.9) == 3
    assert c.reached(0.96) is None
    never = bench.Campaign(true_t=[0.1] * 4, incumbent_true_t=[0.1] * 4)
    # a campaign that never got there counts as budget + 1: two of three never reached → median above budget
    assert bench.median_reach([c, never, never], 0.9, budget=4) == 5
    assert bench.median_reach([c, c, never], 0.9, budget=4) == 3


def test_random_expectation_pools_draws_and_hits(bench: ModuleType) -> None:
    a = bench.Campaign(true_t=[0.0, 1.0, 0.0, 0.0], incumbent_true_t=[0.0] * 4)
    b = bench.Campaign(true_t=[1.0, 0.0, 0.0, 1.0], incumbent_true_t=[0.0] * 4)
    assert bench.random_expectation([a, b], 0.9) == (8 / 3, False)
    assert bench.random_expectation([bench.Campaign(true_t=[0.0] * 5)], 0.9) == (5.0, True)  # lower bound


def test_acceleration_factor_divides_the_baselines_needs_by_the_agents(bench: ModuleType) -> None:
    rows = {
        "bayes": {"experiments_run": 40, "reach_90_median": 20, "reach_95_median": 41},
        "random": {
            "reach_90_expected": 3000.0,
            "reach_90_lower_bound": True,
            "reach_95_expected": 3000.0,
            "reach_95_lower_bound": True,
        },
        "sobol": {"experiments_run": 2000, "reach_90_median": 1000, "reach_95_median": 2001},
    }
    bench.add_acceleration(rows)
    assert rows["bayes"]["af_90_vs_random"] == 150 and rows["bayes"]["af_90_vs_random_lower_bound"]
    assert rows["bayes"]["af_90_vs_sobol"] == 50 and not rows["bayes"]["af_90_vs_sobol_lower_bound"]
    assert "af_95_vs_random" not in rows["bayes"]  # never reached 95 %: no factor


def test_a_campaign_records_every_experiment(bench: ModuleType) -> None:
    record = bench.run_campaign(SobolAgent(RecipeSpace(), seed=1), World(), budget=12, seed=1, batch=5)
    assert len(record.true_t) == len(record.incumbent_true_t) == 12
    assert len(record.suggest_s) == 3  # batches of 5, 5, 2
    assert all(0.0 <= v < 3.0 for v in record.true_t)


def test_bad_arguments_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench/campaign.py"), "--worlds", "mars"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "worlds must be among" in proc.stderr
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench/campaign.py"), "--first-seed", "-1"], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "--first-seed ≥ 0" in proc.stderr


def test_saved_runs_merge_per_world_and_refuse_different_seeds(bench: ModuleType) -> None:
    def summary(agent: str, row: dict, seeds: int = 10, first_seed: int | None = None) -> dict:
        out = {"seeds": seeds, "budget": 40, "worlds": {"default": {"optimum_t": 2.0, "agents": {agent: row}}}}
        return out if first_seed is None else {**out, "first_seed": first_seed}  # files before --first-seed lack it

    bayes = {"experiments_run": 40, "reach_90_median": 10}
    random = {"reach_90_expected": 50.0, "reach_90_lower_bound": False}
    merged = bench.merge([summary("bayes", bayes), summary("random", random)])
    assert set(merged["worlds"]["default"]["agents"]) == {"bayes", "random"}
    assert merged["worlds"]["default"]["agents"]["bayes"]["af_90_vs_random"] == 5.0
    with pytest.raises(SystemExit):
        bench.merge([summary("bayes", bayes), summary("random", random, seeds=3)])
    assert bench.merge([summary("bayes", bayes), summary("random", random, first_seed=0)])["worlds"]
    with pytest.raises(SystemExit):
        bench.merge([summary("bayes", bayes), summary("random", random, first_seed=40)])


def test_seeds_run_in_parallel_give_the_serial_results_in_seed_order(bench: ModuleType) -> None:
    from rich.progress import Progress

    args = argparse.Namespace(
        optimum_maxiter=2, seed_list=[0, 1, 2], baseline_budget=600, budget=20, jobs=2, bayes_settings=None
    )
    with Progress(disable=True) as progress:
        out = bench.run_world("default", args, ["sobol"], progress)
    serial = [bench.one_campaign("sobol", "default", seed, 600) for seed in args.seed_list]
    per_seed = out["agents"]["sobol"]["per_seed"]
    assert per_seed["incumbent_at_20"] == [round(c.incumbent_true_t[19] / out["optimum_t"], 4) for c in serial]
    assert per_seed["reach_90"] == [c.reached(0.9 * out["optimum_t"]) for c in serial]
    assert len(set(per_seed["incumbent_at_20"])) == 3  # the seeds differ, so the order is checked


def test_bayes_settings_reach_the_agent(bench: ModuleType) -> None:
    assert bench.make_agent("bayes", 0, {"exploit_every": 3}).settings.exploit_every == 3
    assert bench.make_agent("bayes", 0).settings.exploit_every is None
