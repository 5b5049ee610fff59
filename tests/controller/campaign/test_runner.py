"""Campaigns on the simulated lab: budget, failures, recovery from the run directory, kill -9 and resume."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controller.campaign.config import CampaignConfig
from controller.campaign.journal import Journal, sqlite_url
from controller.campaign.runner import CampaignRunner
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


def test_kill_9_then_resume_loses_and_repeats_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "GRAINLOOP_DATA_DIR": str(tmp_path)}
    base = [sys.executable, "-m", "controller.cli", "campaign"]
    run = [*base, "run", "--agent", "random", "--budget", "6", "--id", "C-crash", "--json"]
    # slow the simulated clock so the kill lands inside an experiment
    proc = subprocess.Popen(
        [*run, "--time-acceleration", "20000"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    db = tmp_path / "grainloop.db"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        rows = _journal_rows(db)
        if sum(1 for _, s in rows if s == "done") >= 2 and any(s == "running" for _, s in rows):
            break
        assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
        time.sleep(0.05)
    else:
        proc.kill()
        pytest.fail("the campaign never reached its third experiment")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
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
