"""Service campaigns through a real worker: direct and suggest modes, approvals, and a worker killed mid-step."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.campaign.config import CampaignConfig
from controller.campaign.journal import Journal, sqlite_url
from controller.manager.campaigns import CampaignError, ServiceCampaigns
from controller.manager.manager import Manager
from controller.manager.queue import MemoryQueueStore, PlanQueue
from controller.manager.safety import PowerRelays
from controller.manager.watchdog import WorkerSupervisor
from controller.recipe import Recipe
from tests.manager.test_worker_and_watchdog import RECIPE, free_port, wait_for


@pytest.fixture
def service(tmp_path: Path) -> Iterator[ServiceCampaigns]:
    worker = WorkerSupervisor(
        port=free_port(), data_dir=tmp_path, interval_s=0.2, timeout_s=3.0, relays=PowerRelays(tmp_path / "r.json")
    )
    manager = Manager(PlanQueue(MemoryQueueStore()), worker, tick_s=0.05)
    campaigns = ServiceCampaigns(Journal(sqlite_url(tmp_path / "state.sqlite")), manager)
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(0.1):
            campaigns.tick()

    worker.start()
    manager.start()
    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.ready, 120, "the worker")
        yield campaigns
    finally:
        stop.set()
        thread.join(5)
        manager.close()


def steps(campaigns: ServiceCampaigns, campaign_id: str) -> list[tuple[int, str]]:
    return [(r.step, r.status) for r in campaigns.journal.steps(campaign_id)]


def test_direct_campaign_runs_to_its_budget(service: ServiceCampaigns) -> None:
    cid = service.create(CampaignConfig(agent="sobol", budget_experiments=3, characterize="none"))
    assert service.summary(cid)["status"] == "created"
    service.set_state(cid, "start")
    wait_for(lambda: service.summary(cid)["status"] == "finished", 120, "the campaign to finish")
    summary = service.summary(cid)
    assert summary["observations"] == 3 and summary["stop_reason"] == "budget of 3 experiments used"
    assert [s for _, s in steps(service, cid)] == ["done"] * 3
    history = service.manager.queue.get_history()
    assert [h["meta"]["step"] for h in history] == [0, 1, 2]
    assert summary["best"] is None or summary["best"]["trapped_field_t"] > 0
    with pytest.raises(CampaignError, match="cannot start"):
        service.set_state(cid, "start")


def test_suggest_mode_waits_for_an_operator(service: ServiceCampaigns) -> None:
    cid = service.create(CampaignConfig(agent="sobol", budget_experiments=3, characterize="none", mode="suggest"))
    service.set_state(cid, "start")
    wait_for(lambda: len(service.journal.approvals("pending")) == 1, 60, "a proposal")
    first = service.journal.approvals("pending")[0]
    assert service.manager.queue.get() == [] and service.manager.queue.get_history() == []  # nothing ran
    service.decide(first["approval_id"], "reject", "op", None, "too hot")
    with pytest.raises(CampaignError, match="already rejected"):
        service.decide(first["approval_id"], "approve", "op", None, None)
    wait_for(lambda: len(service.journal.approvals("pending")) == 1, 60, "the next proposal")
    second = service.journal.approvals("pending")[0]
    assert second["step"] == first["step"] + 1
    edited = Recipe.model_validate({**RECIPE, "dwell_temperature_c": 650.0})
    service.decide(second["approval_id"], "approve", "op", edited, "cooler")
    wait_for(lambda: (1, "done") in steps(service, cid), 60, "the edited step to run")
    row = next(r for r in service.journal.steps(cid) if r.step == 1)
    assert row.recipe["dwell_temperature_c"] == 650.0 and row.origin == "operator"
    assert steps(service, cid)[0] == (0, "rejected")
    agent = service.agent(cid)
    assert len(agent.ledger.with_status("completed")) == 1  # the rejected proposal is neither pending nor failed
    assert agent.ledger.with_status("failed") == []


def test_worker_killed_mid_step_remakes_the_same_step(service: ServiceCampaigns) -> None:
    cid = service.create(CampaignConfig(agent="sobol", budget_experiments=2, characterize="full"))
    service.set_state(cid, "start")
    manager = service.manager
    wait_for(
        lambda: (
            manager.running_item is not None
            and manager.worker.status is not None
            and manager.worker.status.get("re_state") == "running"
        ),
        60,
        "the first experiment",
    )
    pid = manager.worker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: service.summary(cid)["status"] == "finished", 240, "the campaign to finish after the kill")
    assert steps(service, cid) == [(0, "done"), (1, "done")]  # nothing lost, nothing twice
    history = manager.queue.get_history()
    statuses = [(h["meta"]["step"], h["result"]["exit_status"]) for h in history]
    assert statuses[0] == (0, "failed") and history[0]["result"]["msg"].startswith("worker lost")
    assert statuses[1:] == [(0, "completed"), (1, "completed")]
    assert manager.worker.restarts == 1
