"""Approvals of `suggest` campaigns without a worker: stopping withdraws them; edits are checked and recorded."""

from __future__ import annotations

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
def campaigns(tmp_path: Path) -> Iterator[ServiceCampaigns]:
    """Campaigns over a queue whose worker is never started: items queue up and nothing runs."""
    worker = WorkerSupervisor(port=free_port(), data_dir=tmp_path, relays=PowerRelays(tmp_path / "r.json"))
    manager = Manager(PlanQueue(MemoryQueueStore()), worker)
    yield ServiceCampaigns(Journal(sqlite_url(tmp_path / "state.sqlite")), manager)


def waiting(campaigns: ServiceCampaigns, campaign_id: str, n: int) -> list[dict]:
    """Tick the campaign until `n` approvals of it are pending (the agent proposes in a thread)."""

    def ready() -> bool:
        if campaign_id not in campaigns.proposing:
            campaigns.tick()
        return len(campaigns.journal.approvals("pending", campaign_id=campaign_id)) >= n

    wait_for(ready, 60, f"{n} proposals")
    return campaigns.journal.approvals("pending", campaign_id=campaign_id)


def suggest_campaign(campaigns: ServiceCampaigns, batch: int = 1) -> str:
    config = CampaignConfig(agent="sobol", budget_experiments=4, batch=batch, mode="suggest", seed=5)
    campaign_id = campaigns.create(config)
    campaigns.set_state(campaign_id, "start")
    return campaign_id


def test_stopping_a_campaign_withdraws_its_pending_approvals(campaigns: ServiceCampaigns) -> None:
    cid = suggest_campaign(campaigns, batch=2)
    pending = waiting(campaigns, cid, 2)
    other = suggest_campaign(campaigns)
    waiting(campaigns, other, 1)
    assert len(campaigns.agent(cid).ledger.with_status("pending")) == 2

    assert campaigns.set_state(cid, "stop") == "stopped"

    assert campaigns.journal.approvals("pending", campaign_id=cid) == []
    decided = {a["approval_id"]: a for a in campaigns.journal.approvals(campaign_id=cid)}
    assert {decided[a["approval_id"]]["status"] for a in pending} == {"withdrawn"}
    assert all(decided[a["approval_id"]]["decided_by"] == "service" for a in pending)
    rows = {r.step: r for r in campaigns.journal.steps(cid)}
    assert [rows[a["step"]].status for a in pending] == ["rejected", "rejected"]
    assert all(rows[a["step"]].result["reason"].startswith("withdrawn") for a in pending)
    agent = campaigns.agent(cid)
    assert agent.ledger.with_status("pending") == [] and agent.ledger.with_status("failed") == []
    # a withdrawn approval cannot be approved (nor edited, nor rejected) afterwards
    for decision, edited in (("approve", None), ("approve", Recipe.model_validate(RECIPE)), ("reject", None)):
        with pytest.raises(CampaignError, match="already withdrawn"):
            campaigns.decide(pending[0]["approval_id"], decision, "op", edited, None)
    assert campaigns.manager.queue.get() == []
    # the other campaign's approval is untouched
    assert len(campaigns.journal.approvals("pending", campaign_id=other)) == 1


def test_a_stopped_campaign_survives_a_service_restart_without_pending_approvals(
    campaigns: ServiceCampaigns, tmp_path: Path
) -> None:
    cid = suggest_campaign(campaigns)
    waiting(campaigns, cid, 1)
    campaigns.set_state(cid, "stop")
    again = ServiceCampaigns(campaigns.journal, campaigns.manager)  # what a restarted service reads
    again.tick()
    assert again.journal.approvals("pending") == []
    assert again.summary(cid)["status"] == "stopped" and again.summary(cid)["in_flight"] == 0


def test_an_edited_approval_queues_the_edit_and_records_it(campaigns: ServiceCampaigns) -> None:
    cid = suggest_campaign(campaigns)
    (approval,) = waiting(campaigns, cid, 1)
    proposed = approval["recipe"]
    edited = Recipe.model_validate({**RECIPE, "dwell_temperature_c": 655.0})
    out = campaigns.decide(approval["approval_id"], "approve", "op", edited, "cooler")
    assert out == {"approval_id": approval["approval_id"], "status": "edited"}
    record = campaigns.journal.approval(approval["approval_id"])
    assert record["status"] == "edited" and record["decided_by"] == "op" and record["note"] == "cooler"
    assert record["recipe"] == proposed  # the agent's proposal stays on the approval
    row = next(r for r in campaigns.journal.steps(cid) if r.step == approval["step"])
    assert row.recipe == edited.model_dump() and row.origin == "operator" and row.status == "running"
    (item,) = campaigns.manager.queue.get()
    assert item["kwargs"]["recipe"]["dwell_temperature_c"] == 655.0 and item["meta"]["step"] == approval["step"]


def test_a_stopped_campaign_approves_nothing_even_if_its_approval_was_left_pending(
    campaigns: ServiceCampaigns,
) -> None:
    """A campaign stopped by the runner's own stop rule (finished) or a journal from before withdrawal."""
    cid = suggest_campaign(campaigns)
    (approval,) = waiting(campaigns, cid, 1)
    campaigns.journal.set_status(cid, "stopped", "by an older service that left its approvals pending")
    with pytest.raises(CampaignError, match="is stopped"):
        campaigns.decide(approval["approval_id"], "approve", "op", None, None)
    assert campaigns.journal.approval(approval["approval_id"])["status"] == "pending"
    assert campaigns.decide(approval["approval_id"], "reject", "op", None, "clean up")["status"] == "rejected"
    assert campaigns.manager.queue.get() == []
