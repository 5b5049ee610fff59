"""A real worker process driven by the manager: queue, pause/resume, results once, and the watchdog.

Every wait is bounded; the worker is shut down (or killed) in the fixture's teardown.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from controller.manager.manager import Manager
from controller.manager.queue import MemoryQueueStore, PlanQueue
from controller.manager.safety import PowerRelays
from controller.manager.watchdog import WorkerSupervisor
from controller.service.ports import free_loopback_port
from controller.worker.plans import PlanItemError
from controller.worker.process import build_worker
from simulators.world import World

RECIPE = {
    "mill_rpm": 500.0,
    "milling_time_h": 4.0,
    "ball_to_powder_ratio": 10.0,
    "k_excess": 0.03,
    "route": "hip",
    "dwell_temperature_c": 700.0,
    "dwell_time_h": 4.0,
    "pressure_mpa": 150.0,
    "ramp_rate_c_per_min": 5.0,
}


def free_port() -> int:
    """A free loopback port outside the ephemeral range (`controller.service.ports`)."""
    return free_loopback_port()


def wait_for(condition: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def hold(seconds: float) -> dict:
    return {"item_type": "plan", "name": "hold", "kwargs": {"duration_s": seconds}}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Manager, list[str]]]:
    safe_calls: list[str] = []

    def make_safe() -> str:
        safe_calls.append("safe")
        return "instruments made safe (test)"

    worker = WorkerSupervisor(
        port=free_port(),
        data_dir=tmp_path,
        interval_s=0.2,
        timeout_s=3.0,
        make_safe=make_safe,
        relays=PowerRelays(tmp_path / "relays.json"),
    )
    manager = Manager(PlanQueue(MemoryQueueStore()), worker, tick_s=0.05)
    worker.start()
    manager.start()
    try:
        wait_for(lambda: worker.ready, 120, "the worker to start")
        yield manager, safe_calls
    finally:
        manager.close()


def test_queue_runs_items_and_records_each_once(lab: tuple[Manager, list[str]]) -> None:
    manager, _ = lab
    for seconds in (0.3, 0.3):
        manager.queue.add(hold(seconds))
    manager.queue_start()
    wait_for(lambda: len(manager.queue.history) == 2 and manager.manager_state() == "idle", 60, "two items")
    results = [h["result"] for h in manager.queue.get_history()]
    assert [r["exit_status"] for r in results] == ["completed", "completed"]
    assert all(len(r["run_uids"]) == 1 for r in results)
    time.sleep(0.5)  # further status polls must not record them again
    assert len(manager.queue.history) == 2
    assert manager.worker.status is not None and manager.worker.status["completed"] == []


def test_make_sample_returns_its_observation(lab: tuple[Manager, list[str]]) -> None:
    manager, _ = lab
    kwargs = {"recipe": RECIPE, "campaign_id": "c1", "sample_id": "c1-0000", "step": 0, "characterize": "none"}
    manager.queue.add({"item_type": "plan", "name": "make_sample", "kwargs": kwargs})
    manager.queue_start()
    wait_for(lambda: len(manager.queue.history) == 1, 120, "make_sample")
    result = manager.queue.get_history()[0]["result"]
    assert result["exit_status"] == "completed", result
    props = result["observation"]["properties"]
    assert props["trapped_field_t"] > 0 and 0 < props["tc_k"] < 40
    snapshot = manager.worker.call("devices")["devices"]
    assert snapshot["furnace"]["furnace_temperature_c"]["value"] < 900


def test_pause_and_resume(lab: tuple[Manager, list[str]]) -> None:
    manager, _ = lab
    manager.queue.add(hold(3.0))
    manager.queue_start()
    wait_for(lambda: (manager.worker.status or {}).get("re_state") == "running", 30, "the plan to run")
    manager.control("pause", "immediate")
    wait_for(lambda: manager.manager_state() == "paused", 30, "the pause")
    manager.control("resume")
    wait_for(lambda: len(manager.queue.history) == 1, 30, "the resumed plan to finish")
    assert manager.queue.get_history()[0]["result"]["exit_status"] == "completed"


def test_stop_of_a_paused_plan_stops_the_queue(lab: tuple[Manager, list[str]]) -> None:
    manager, _ = lab
    manager.queue.add(hold(3.0))
    manager.queue.add(hold(0.2))
    manager.queue_start()
    wait_for(lambda: (manager.worker.status or {}).get("re_state") == "running", 30, "the plan to run")
    manager.control("pause", "immediate")
    wait_for(lambda: manager.manager_state() == "paused", 30, "the pause")
    manager.control("stop")
    wait_for(lambda: len(manager.queue.history) == 1, 30, "the stop")
    assert manager.queue.get_history()[0]["result"]["exit_status"] == "stopped"
    wait_for(lambda: manager.manager_state() == "idle", 10, "the queue to stop")
    assert len(manager.queue.items) == 1  # the second item waits


def test_bad_items_are_refused_before_queueing(lab: tuple[Manager, list[str]]) -> None:
    manager, _ = lab
    with pytest.raises(PlanItemError, match="unknown plan"):
        manager.validate({"name": "rm_rf"})
    with pytest.raises(PlanItemError, match="duration_s"):
        manager.validate(hold(-1))
    with pytest.raises(PlanItemError, match="keyword arguments only"):
        manager.validate({"name": "hold", "args": [1]})


def test_kill_9_mid_plan_makes_safe_restarts_and_records_the_loss(lab: tuple[Manager, list[str]]) -> None:
    manager, safe_calls = lab
    first_pid = manager.worker.pid
    manager.queue.add(hold(30.0))
    manager.queue_start()
    wait_for(lambda: (manager.worker.status or {}).get("re_state") == "running", 30, "the plan to run")
    assert first_pid is not None
    os.kill(first_pid, signal.SIGKILL)
    wait_for(lambda: len(manager.queue.history) == 1, 30, "the loss to be recorded")
    result = manager.queue.get_history()[0]["result"]
    assert result["exit_status"] == "failed" and result["msg"].startswith("worker lost")
    assert "relays cut" in result["msg"] and "made safe" in result["msg"]
    assert safe_calls == ["safe"]
    relays = manager.worker.relays
    assert relays is not None
    # re-armed only after the new worker reported the instruments at rest
    wait_for(lambda: relays.armed, 120, "the relays to re-arm")
    assert relays.state()["previous"]["reason"].startswith("worker process exited")
    wait_for(lambda: manager.worker.ready and manager.worker.pid not in (None, first_pid), 120, "a new worker")
    assert manager.worker.restarts == 1
    manager.queue.add(hold(0.2))
    manager.queue_start()
    wait_for(lambda: len(manager.queue.history) == 2, 30, "an item on the new worker")
    assert manager.queue.get_history()[1]["result"]["exit_status"] == "completed"


def test_worker_refuses_heating_while_the_relays_are_cut(tmp_path: Path) -> None:
    relays = PowerRelays(tmp_path / "relays.json")
    worker = build_worker(World(), tmp_path, relays=relays)
    try:
        relays.cut("test: worker lost")
        item = {
            "item_uid": "u1",
            "name": "make_sample",
            "kwargs": {"recipe": RECIPE, "campaign_id": "c", "sample_id": "c-0", "step": 0, "characterize": "none"},
        }
        reply = worker.handle({"method": "run", "item": item})
        assert not reply["ok"] and "relays are cut (test: worker lost)" in reply["error"]
        assert worker.handle(
            {"method": "run", "item": {"item_uid": "u2", "name": "hold", "kwargs": {"duration_s": 1}}}
        )["ok"]
        relays.arm(by="test")
        assert relays.armed and relays.state()["previous"]["reason"] == "test: worker lost"
    finally:
        worker.lab.close()
