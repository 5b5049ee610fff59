"""Campaigns run by the service: the agent proposes, the adjudicator checks, the queue runs, the journal keeps.

A campaign is created (its config validated), then started. While it runs and has nothing in flight,
its agent proposes a batch (in a background thread: a Bayesian decision takes seconds); every proposal is
journalled *before* anything else happens, then checked against the safety envelope. In `direct` mode a
safe proposal goes straight to the queue as a `make_sample` item tagged with the campaign and step; in
`suggest` mode it waits for an operator's approval (approve, edit, reject; withdrawn if the campaign is
stopped first). An unsafe proposal is rejected with the rule it broke and the agent hears of it as a
failure (it must not propose it again).

When a campaign's item finishes, the observation (or the failure) is ingested and journalled with the
agent's checkpoint in one transaction. If the worker was lost mid-experiment, the step is made again from
scratch under the same step number — never lost, never counted twice. The same journal rows resume a
campaign after the service itself restarts.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Literal

from agents.protocol import Optimizer
from controller.campaign.agent_factory import make_agent, restore_agent
from controller.campaign.config import CampaignConfig
from controller.campaign.journal import Journal, StepRow
from controller.campaign.results import best_so_far
from controller.campaign.runner import stop_reason
from controller.manager.adjudicator import envelope_violation
from controller.manager.manager import Manager, ManagerError
from controller.recipe import Recipe

log = logging.getLogger("grainloop.campaigns")
Mode = Literal["direct", "suggest"]
IN_FLIGHT = ("proposed", "running")  # a proposal waiting for approval is "proposed"


class CampaignError(ValueError):
    """A request about a campaign that cannot be done (unknown id, wrong state)."""


class ServiceCampaigns:
    """All campaigns of the service. Thread-safe: the API, the manager's listener and the proposer call it."""

    def __init__(self, journal: Journal, manager: Manager, on_decision: Callable[[float], None] | None = None) -> None:
        self.journal, self.manager = journal, manager
        self.on_decision = on_decision  # called with the wall seconds of each agent decision
        self.lock = threading.RLock()
        self.agents: dict[str, Optimizer] = {}
        self.proposing: set[str] = set()
        self.resumed: set[str] = set()
        manager.add_listener(self.item_finished)

    # -- lifecycle ---------------------------------------------------------------------------------
    def create(self, config: CampaignConfig) -> str:
        campaign_id = f"C-{time.strftime('%Y%m%d')}-{uuid.uuid4().hex[:6]}"
        self.journal.create_campaign(campaign_id, config.model_dump())
        self.journal.set_status(campaign_id, "created")
        return campaign_id

    def _record(self, campaign_id: str) -> dict[str, Any]:
        try:
            return self.journal.campaign(campaign_id)
        except KeyError:
            raise CampaignError(f"no campaign {campaign_id!r}") from None

    def config(self, campaign_id: str) -> tuple[CampaignConfig, Mode]:
        config = CampaignConfig.model_validate(self._record(campaign_id)["config"])
        return config, config.mode

    def set_state(self, campaign_id: str, action: str) -> str:
        """start | pause | resume | stop; returns the new status."""
        status = self._record(campaign_id)["status"]
        allowed = {
            "start": ({"created"}, "running"),
            "pause": ({"running"}, "paused"),
            "resume": ({"paused"}, "running"),
            "stop": ({"created", "running", "paused"}, "stopped"),
        }
        if action not in allowed:
            raise CampaignError(f"unknown action {action!r}")
        sources, target = allowed[action]
        if status not in sources:
            raise CampaignError(f"campaign {campaign_id} is {status}; cannot {action}")
        self.journal.set_status(campaign_id, target, "stopped by an operator" if action == "stop" else None)
        if action == "stop":
            for item in self.manager.queue.get():
                if (item.get("meta") or {}).get("campaign_id") == campaign_id:
                    self.manager.queue.remove(uid=item["item_uid"])
            self.withdraw_pending(campaign_id)
        return target

    def withdraw_pending(self, campaign_id: str, reason: str = "the campaign was stopped") -> list[str]:
        """Withdraw the pending approvals of a stopped campaign; their steps are rejected and never run.

        A withdrawn approval cannot be decided afterwards (`decide` refuses it like any decided one); the
        agent hears of the suggestion as withdrawn (neither pending nor failed). Returns the approval ids.
        """
        withdrawn = []
        for approval in self.journal.approvals("pending", campaign_id=campaign_id):
            if not self.journal.decide_approval(approval["approval_id"], "withdrawn", "service", reason):
                continue  # decided meanwhile by an operator
            withdrawn.append(approval["approval_id"])
            with self.lock:
                agent = self.agent(campaign_id)
                row = next((r for r in self.journal.steps(campaign_id) if r.step == approval["step"]), None)
                if row is not None and row.origin == "agent" and row.suggestion_id in agent.ledger:  # type: ignore[attr-defined]
                    agent.withdraw(row.suggestion_id)
                self.journal.reject(campaign_id, approval["step"], f"withdrawn: {reason}", agent.checkpoint())
        return withdrawn

    def agent(self, campaign_id: str) -> Optimizer:
        with self.lock:
            if campaign_id not in self.agents:
                config, _ = self.config(campaign_id)
                state = self._record(campaign_id)["agent_state"]
                self.agents[campaign_id] = restore_agent(config, state) if state else make_agent(config)
            return self.agents[campaign_id]

    # -- the loop (called by the service's campaign thread) ----------------------------------------------
    def tick(self) -> None:
        for campaign_id in self.journal_campaigns("running"):
            if campaign_id not in self.resumed:
                self._resume(campaign_id)
                self.resumed.add(campaign_id)
            rows = self.journal.steps(campaign_id)
            if any(r.status in IN_FLIGHT for r in rows) or campaign_id in self.proposing:
                continue
            reason = self.stop_reason(campaign_id, rows)
            if reason:
                self.journal.set_status(campaign_id, "finished", reason)
                continue
            self.proposing.add(campaign_id)
            threading.Thread(target=self._propose, args=(campaign_id, rows), daemon=True).start()

    def journal_campaigns(self, status: str) -> list[str]:
        return self.journal.campaign_ids(status)

    def stop_reason(self, campaign_id: str, rows: list[StepRow]) -> str | None:
        config, _ = self.config(campaign_id)
        return stop_reason(config, rows)

    def _propose(self, campaign_id: str, rows: list[StepRow]) -> None:
        try:
            config, mode = self.config(campaign_id)
            agent = self.agent(campaign_id)
            finished = sum(1 for r in rows if r.status in ("done", "failed"))
            n = min(config.batch, config.budget_experiments - finished)
            t0 = time.perf_counter()
            with self.lock:
                suggestions = agent.suggest(n)
            if self.on_decision is not None:
                self.on_decision(time.perf_counter() - t0)
            reasoning = {"agent": config.agent, "info": getattr(agent, "last_info", None)}
            next_step = max((r.step for r in rows), default=-1) + 1
            new_rows = []
            for i, s in enumerate(suggestions):
                recipe = Recipe.model_validate({k: v for k, v in s.items() if k != "_id"}).model_dump()
                step = next_step + i
                new_rows.append(
                    StepRow(
                        campaign_id, step, str(s["_id"]), f"{campaign_id}-{step:04d}", recipe, "proposed", None, "agent"
                    )
                )
            with self.lock:
                self.journal.propose(campaign_id, new_rows, agent.checkpoint())
            for row in new_rows:
                self._route(campaign_id, row, mode, config, reasoning)
            if self._record(campaign_id)["status"] == "stopped":  # stopped while the agent was thinking
                self.withdraw_pending(campaign_id)
        except Exception:
            log.exception("campaign %s: proposing failed", campaign_id)
        finally:
            self.proposing.discard(campaign_id)

    def _route(self, campaign_id: str, row: StepRow, mode: Mode, config: CampaignConfig, reasoning: Any) -> None:
        """A journalled proposal → refused (unsafe), waiting for approval, or queued."""
        rule = envelope_violation(row.recipe)
        if rule is not None:
            self._finish(campaign_id, row, True, {"reason": f"refused by the adjudicator: {rule}"})
            return
        if mode == "suggest" and row.origin == "agent":
            self.journal.add_approval(campaign_id, row.step, row.recipe, reasoning)
            return
        self.enqueue(campaign_id, row, config)

    def enqueue(self, campaign_id: str, row: StepRow, config: CampaignConfig) -> None:
        item = {
            "item_type": "plan",
            "name": "make_sample",
            "args": [],
            "kwargs": {
                "recipe": row.recipe,
                "campaign_id": campaign_id,
                "sample_id": row.sample_id,
                "step": row.step,
                "characterize": config.characterize,
            },
            "meta": {"campaign_id": campaign_id, "step": row.step},
            "user": "campaign",
            "user_group": "agent" if row.origin == "agent" else "operator",
        }
        self.journal.mark_running(campaign_id, row.step)
        self.manager.queue.add(item)
        if not self.manager.queue_running and self.manager.worker.wanted:
            with contextlib.suppress(ManagerError):  # already running: fine
                self.manager.queue_start()

    def _resume(self, campaign_id: str) -> None:
        """After a service restart: steps journalled but neither queued nor running are routed again."""
        config, mode = self.config(campaign_id)
        queued = {
            (i.get("meta") or {}).get("step")
            for i in self.manager.queue.get()
            if (i.get("meta") or {}).get("campaign_id") == campaign_id
        }
        for row in self.journal.steps(campaign_id):
            if row.step in queued:
                continue
            if row.status == "running":
                log.warning("campaign %s step %d was in flight; making it again", campaign_id, row.step)
                self.enqueue(campaign_id, row, config)
            elif row.status == "proposed":
                self._route(campaign_id, row, mode, config, {"agent": config.agent, "info": "resumed"})

    # -- results -----------------------------------------------------------------------------------
    def item_finished(self, item: dict[str, Any], result: dict[str, Any]) -> None:
        meta = item.get("meta") or {}
        campaign_id, step = meta.get("campaign_id"), meta.get("step")
        if not campaign_id or step is None:
            return
        row = next((r for r in self.journal.steps(campaign_id) if r.step == step), None)
        if row is None or row.status not in ("proposed", "running"):
            return
        if str(result.get("msg", "")).startswith("worker lost"):
            config, _ = self.config(campaign_id)
            self.enqueue(campaign_id, row, config)  # made again from scratch under the same step
            return
        obs = result.get("observation")
        if result.get("exit_status") == "completed" and obs:
            self._finish(campaign_id, row, False, {**obs["properties"], "run_uid": obs["run_uid"]})
        else:
            self._finish(campaign_id, row, True, {"reason": (result.get("msg") or result.get("exit_status"))[:500]})

    def _finish(self, campaign_id: str, row: StepRow, failed: bool, result: dict[str, Any]) -> None:
        with self.lock:
            agent = self.agent(campaign_id)
            agent.ingest([{**row.recipe, "_id": row.suggestion_id, **result, "failed": failed}])
            self.journal.finish(campaign_id, row.step, failed=failed, result=result, agent_state=agent.checkpoint())

    # -- operators ---------------------------------------------------------------------------------
    def _journal_step(self, campaign_id: str, recipe: Recipe, suggestion_id: str, origin: str) -> StepRow:
        """A new proposed step after the campaign's last one, journalled with the agent's checkpoint."""
        with self.lock:
            step = max((r.step for r in self.journal.steps(campaign_id)), default=-1) + 1
            row = StepRow(
                campaign_id, step, suggestion_id, f"{campaign_id}-{step:04d}", recipe.model_dump(), "proposed", None,
                origin,
            )  # fmt: skip
            self.journal.propose(campaign_id, [row], self.agent(campaign_id).checkpoint())
        return row

    def inject(self, campaign_id: str, recipe: Recipe) -> int:
        """An operator's recipe, journalled and queued like any other step (it needs no approval)."""
        config, _ = self.config(campaign_id)
        rule = envelope_violation(recipe.model_dump())
        if rule is not None:  # before journalling: a refused recipe must not leave a step waiting forever
            raise CampaignError(rule)
        row = self._journal_step(campaign_id, recipe, f"operator-{uuid.uuid4().hex[:8]}", "operator")
        self.enqueue(campaign_id, row, config)
        return row.step

    def propose_external(self, campaign_id: str, recipe: Recipe, reasoning: dict[str, Any], by: str) -> tuple[int, str]:
        """A recipe proposed from outside (an agent principal): journalled, then approval or queue by mode."""
        config, mode = self.config(campaign_id)
        if self._record(campaign_id)["status"] != "running":
            raise CampaignError(f"campaign {campaign_id} is not running")
        row = self._journal_step(campaign_id, recipe, f"{by}-{uuid.uuid4().hex[:8]}", "agent")
        self._route(campaign_id, row, mode, config, {**reasoning, "proposed_by": by})
        return row.step, "awaiting_approval" if mode == "suggest" else "queued"

    def decide(
        self, approval_id: str, decision: str, by: str, edited: Recipe | None, note: str | None
    ) -> dict[str, Any]:
        """approve (optionally an edited recipe) or reject a waiting proposal; idempotent per approval."""
        approval = self.journal.approval(approval_id)
        if approval is None:
            raise CampaignError(f"no campaign approval {approval_id!r}")
        if approval["status"] != "pending":
            raise CampaignError(f"approval {approval_id} was already {approval['status']} by {approval['decided_by']}")
        campaign_id, step = approval["campaign_id"], approval["step"]
        row = next((r for r in self.journal.steps(campaign_id) if r.step == step), None)
        if row is None or row.status != "proposed":
            raise CampaignError(f"step {step} of {campaign_id} is no longer waiting")
        config, _ = self.config(campaign_id)
        campaign_status = self._record(campaign_id)["status"]
        if decision != "reject" and campaign_status in ("stopped", "finished"):
            raise CampaignError(f"campaign {campaign_id} is {campaign_status}; nothing more of it runs")
        if edited is not None and decision != "reject":
            rule = envelope_violation(edited.model_dump())
            if rule is not None:  # as for an injected recipe: refused before anything is recorded
                raise CampaignError(rule)
        status = "rejected" if decision == "reject" else ("edited" if edited is not None else "approved")
        if not self.journal.decide_approval(approval_id, status, by, note):
            raise CampaignError(f"approval {approval_id} was decided meanwhile")
        if decision == "reject":
            with self.lock:
                agent = self.agent(campaign_id)
                if row.origin == "agent" and row.suggestion_id in agent.ledger:  # type: ignore[attr-defined]
                    agent.withdraw(row.suggestion_id)
                self.journal.reject(campaign_id, step, f"rejected by {by}: {note or ''}".strip(), agent.checkpoint())
            return {"approval_id": approval_id, "status": status}
        if edited is not None:
            row = StepRow(
                campaign_id, step, row.suggestion_id, row.sample_id, edited.model_dump(), "proposed", None, row.origin
            )
            self.journal.replace_recipe(campaign_id, step, row.recipe)
        self.enqueue(campaign_id, row, config)
        return {"approval_id": approval_id, "status": status}

    def summary(self, campaign_id: str) -> dict[str, Any]:
        record = self._record(campaign_id)
        config, mode = self.config(campaign_id)
        rows = self.journal.steps(campaign_id)
        best, best_row = best_so_far(rows, config.min_tc_k)
        return {
            "campaign_id": campaign_id,
            "status": record["status"],
            "stop_reason": record["stop_reason"],
            "mode": mode,
            "agent": config.agent,
            "observations": sum(1 for r in rows if r.status in ("done", "failed")),
            "in_flight": sum(1 for r in rows if r.status in IN_FLIGHT),
            "best_trapped_field_t": best,
            "best": {"recipe": best_row.recipe, "trapped_field_t": best, "step": best_row.step} if best_row else None,
        }
