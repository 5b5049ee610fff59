"""Campaigns on the simulated lab: budget, failures, recovery from the run directory, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from controller.campaign.config import CampaignConfig
from controller.campaign.journal import Journal, sqlite_url
from controller.campaign.runner import CampaignRunner, instrument_hours
from simulators.faults import FaultConfig
from simulators.world import World


def start(tmp_path: Path, campaign_id: str = "C-test", **config: object) -> tuple[Journal, CampaignRunner]:
    journal = Journal(sqlite_url(tmp_path / "grainloop.db"))
    world = config.pop("world", World())
    cfg = CampaignConfig(agent="random", world=world.model_dump(mode="json"), **config)  # type: ignore[arg-type, union-attr]
    journal.create_campaign(campaign_id, cfg.model_dump(mode="json"))
    return journal, CampaignRunner(journal, campaign_id, tmp_path)


def test_a_campaign_runs_its_budget_once_per_step(tmp_path: Path) -> None:
    journal, runner = start(tmp_path, budget_experiments=4, batch=2)
    reason = runner.run()
    assert "budget of 4 experiments" in reason
    rows = journal.steps("C-test")
    assert [r.step for r in rows] == [0, 1, 2, 3]
    assert all(r.status == "done" and r.result["trapped_field_t"] >= 0 for r in rows)
    assert all(isinstance(r.result["k_balance_wt_pct"], float) for r in rows)  # the XRD's K balance, for the agent
    assert journal.campaign("C-test")["status"] == "finished"
    assert journal.campaign("C-test")["agent_state"], "the agent's checkpoint is journalled"


def test_failed_experiments_are_journalled_and_the_campaign_goes_on(tmp_path: Path) -> None:
    world = World(faults=FaultConfig(forced=("thermocouple_open",)))
    journal, runner = start(tmp_path, budget_experiments=3, world=world)
    runner.run()
    rows = journal.steps("C-test")
    assert len(rows) == 3 and all(r.status == "failed" for r in rows)
    assert all("thermocouple open circuit" in r.result["reason"] for r in rows)


def test_a_step_whose_measurement_finished_before_a_crash_is_recovered_not_repeated(tmp_path: Path) -> None:
    journal, runner = start(tmp_path, budget_experiments=1)
    runner.run()
    done = journal.steps("C-test")[0]
    # pretend the process died after the measurement run closed but before the journal heard of it
    with journal.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE steps SET status='running', result=NULL WHERE step=0")
    sample_dir = tmp_path / "campaigns" / "C-test" / done.sample_id
    runs_before = sorted(p.name for p in sample_dir.glob("*.jsonl"))
    resumed = CampaignRunner(journal, "C-test", tmp_path)
    resumed.run()
    row = journal.steps("C-test")[0]
    assert row.status == "done" and row.result["recovered"] is True
    assert row.result["trapped_field_t"] == done.result["trapped_field_t"]
    assert sorted(p.name for p in sample_dir.glob("*.jsonl")) == runs_before  # nothing was made again


def _journal_rows(db: Path) -> list[tuple[int, str]]:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return list(conn.execute("SELECT step, status FROM steps ORDER BY step"))
    except sqlite3.OperationalError:
        return []


def _sigkill_when(proc: subprocess.Popen, ready: Callable[[], bool], poll_s: float, never: str) -> None:
    """Poll `ready` (for at most 120 s) while the process lives, then SIGKILL it; fail with `never` if not."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if ready():
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(poll_s)
    else:
        proc.kill()
        pytest.fail(never)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


def test_kill_9_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "GRAINLOOP_DATA_DIR": str(tmp_path)}
    base = [sys.executable, "-m", "controller.cli", "campaign"]
    run = [*base, "run", "--agent", "random", "--budget", "6", "--id", "C-crash", "--json"]
    # slow the simulated clock so the kill lands inside an experiment
    proc = subprocess.Popen(
        [*run, "--time-acceleration", "20000"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    db = tmp_path / "grainloop.db"

    def in_third_experiment() -> bool:
        rows = _journal_rows(db)
        return sum(1 for _, s in rows if s == "done") >= 2 and any(s == "running" for _, s in rows)

    _sigkill_when(proc, in_third_experiment, 0.05, "the campaign never reached its third experiment")
    killed_in = [step for step, s in _journal_rows(db) if s == "running"]
    assert killed_in, "the kill should land inside a running experiment"

    resumed = subprocess.run([*base, "resume", "C-crash", "--json"], env=env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    summary = json.loads(resumed.stdout)
    assert summary["observations"] == 6
    rows = _journal_rows(db)
    assert [step for step, _ in rows] == list(range(6))  # no step missing, none twice
    assert all(s == "done" for _, s in rows)
    # every step has exactly one completed measurement run recorded in the journal
    journal = Journal(sqlite_url(db))
    uids = [r.result["run_uid"] for r in journal.steps("C-crash")]
    assert len(set(uids)) == 6


def test_a_batch_is_pipelined_and_each_step_keeps_its_own_result(tmp_path: Path) -> None:
    journal, runner = start(tmp_path, "C-pipe", budget_experiments=4, batch=4, seed=3)
    runner.run()
    pipelined = journal.steps("C-pipe")
    (tmp_path / "seq").mkdir()
    _, sequential = start(tmp_path / "seq", "C-pipe", budget_experiments=4, batch=4, seed=3)
    sequential.pipeline = False
    sequential.run()
    one_by_one = sequential.journal.steps("C-pipe")
    assert [r.recipe for r in pipelined] == [r.recipe for r in one_by_one]
    assert [r.result["trapped_field_t"] for r in pipelined] == [r.result["trapped_field_t"] for r in one_by_one]
    results = [r.result for r in pipelined]
    assert all(r["instrument_s"] > 0 and r["wall_s"] > 0 for r in results)
    assert len({r["batch_id"] for r in results}) == 1 and {r["batch_size"] for r in results} == {4}
    makespan = results[0]["batch_makespan_s"]
    assert [r["batch_offset_s"] for r in results] == sorted(r["batch_offset_s"] for r in results)
    assert results[1]["batch_offset_s"] < results[0]["instrument_s"]  # sample 1 started before sample 0 ended
    assert instrument_hours(pipelined) == pytest.approx(makespan / 3600.0)  # a batch counts its makespan once
    assert instrument_hours(one_by_one) == pytest.approx(sum(r.result["instrument_s"] for r in one_by_one) / 3600)


def test_a_batch_cut_short_resumes_recovering_the_measured_and_remaking_the_rest(tmp_path: Path) -> None:
    journal, runner = start(tmp_path, budget_experiments=3, batch=3)
    runner.run()
    before = journal.steps("C-test")
    # pretend the process died mid-batch: every step running, samples 1 and 2 not measured yet
    with journal.engine.begin() as conn:
        conn.exec_driver_sql("UPDATE steps SET status='running', result=NULL")
    root = tmp_path / "campaigns" / "C-test"
    for row in before[1:]:
        for path in (root / row.sample_id).glob("measure_properties-*.jsonl"):
            lines = path.read_text().splitlines()
            path.write_text("\n".join(lines[:-1]) + "\n")  # the stop document never made it
    CampaignRunner(journal, "C-test", tmp_path).run()
    after = journal.steps("C-test")
    assert [r.status for r in after] == ["done"] * 3
    assert after[0].result["recovered"] is True and after[0].result["run_uid"] == before[0].result["run_uid"]
    assert all("recovered" not in r.result and r.result["batch_size"] == 2 for r in after[1:])
    # the re-made samples measure what they measured before: the simulator is seeded per sample
    assert [r.result["trapped_field_t"] for r in after] == [r.result["trapped_field_t"] for r in before]
    assert len(list((root / before[0].sample_id).glob("measure_properties-*.jsonl"))) == 1  # nothing made again


def _measured(root: Path) -> set[str]:
    """Samples with a measurement run that closed."""
    done = set()
    for path in root.glob("*/measure_properties-*.jsonl"):
        try:
            if json.loads(path.read_text().splitlines()[-1])[0] == "stop":
                done.add(path.parent.name)
        except (IndexError, ValueError):
            continue
    return done


def test_kill_9_in_the_middle_of_a_batch_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "GRAINLOOP_DATA_DIR": str(tmp_path)}
    base = [sys.executable, "-m", "controller.cli", "campaign"]
    fixed = ["--fix", "route=sps", "--fix", "milling_time_h=0.5", "--fix", "dwell_time_h=0.5"]
    run = [*base, "run", "--agent", "random", "--budget", "3", "--batch", "3", "--id", "C-kb", *fixed, "--json"]
    proc = subprocess.Popen(
        [*run, "--time-acceleration", "20000"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    db, root = tmp_path / "grainloop.db", tmp_path / "campaigns" / "C-kb"

    def inside_the_batch() -> bool:
        return len(_measured(root)) in (1, 2) and [s for _, s in _journal_rows(db)] == ["running"] * 3

    _sigkill_when(proc, inside_the_batch, 0.005, "the kill never landed inside the batch")
    measured_before = _measured(root)

    resumed = subprocess.run([*base, "resume", "C-kb", "--json"], env=env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert json.loads(resumed.stdout)["observations"] == 3
    rows = Journal(sqlite_url(db)).steps("C-kb")
    assert [(r.step, r.status) for r in rows] == [(0, "done"), (1, "done"), (2, "done")]
    assert {r.sample_id for r in rows if r.result.get("recovered")} == measured_before
    for row in rows:  # one closed measurement per sample, and it is the one the journal holds
        runs = (root / row.sample_id).glob("measure_properties-*.jsonl")
        uids = {json.loads(p.read_text().splitlines()[0])[1]["uid"] for p in runs if _closed(p)}
        assert uids == {row.result["run_uid"]}


def _closed(path: Path) -> bool:
    lines = path.read_text().splitlines()
    return bool(lines) and lines[-1].startswith('["stop"')
