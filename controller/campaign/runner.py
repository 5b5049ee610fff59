"""The closed loop: suggest → make_sample → gather → ingest, journalled so that `kill -9` loses nothing.

A batch of several proposed steps goes through the lab pipelined (`make_batch`: the mill works on
sample n + 1 while sample n sinters); every step is marked running before the batch starts and
finished with its own result after it, in step order. Set `pipeline=False` to make them one by one.

Resume rules: a step the journal calls *done* or *failed* is never run again; a *proposed* step runs
with the recipe it was proposed with; a *running* step (the process died during its experiment) is
first looked up in the run directory — if its measurement run finished, that observation is used —
and only otherwise re-made from scratch under the same step number.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bluesky import RunEngine

from controller.campaign.agent_factory import make_agent, restore_agent
from controller.campaign.config import CampaignConfig
from controller.campaign.journal import Journal, StepRow
from controller.campaign.results import OBJECTIVE, best_so_far, campaign_dir
from controller.lab import build_sim_lab
from controller.observations import ObservationCollector
from controller.plans import SampleContext, make_sample
from controller.plans.make_batch import BatchOutcome, make_batch
from controller.plans.make_sample import failure_reason
from controller.recipe import Recipe
from controller.rundir import RunDirectoryWriter, replay
from simulators.world import World


def instrument_hours(rows: list[StepRow]) -> float:
    """Lab time the finished steps took: a pipelined batch counts its makespan once, a lone sample its own."""
    total_s, batches = 0.0, set()
    for row in rows:
        result = row.result or {}
        if row.status not in ("done", "failed"):
            continue
        if "batch_id" in result:
            if result["batch_id"] not in batches:
                batches.add(result["batch_id"])
                total_s += result.get("batch_makespan_s", 0.0)
        else:
            total_s += result.get("instrument_s", 0.0)
    return total_s / 3600.0


def stop_reason(cfg: CampaignConfig, rows: list[StepRow]) -> str | None:
    """Why a campaign with these journal rows should stop (budget, target, patience), or None."""
    finished = [r for r in rows if r.status in ("done", "failed")]
    if len(finished) >= cfg.budget_experiments:
        return f"budget of {cfg.budget_experiments} experiments used"
    if cfg.budget_instrument_h is not None:
        hours = instrument_hours(finished)
        if hours >= cfg.budget_instrument_h:
            return f"budget of {cfg.budget_instrument_h:g} instrument hours used ({hours:.1f} h)"
    best, _ = best_so_far(rows, cfg.min_tc_k)
    if cfg.target_trapped_field_t is not None and best is not None and best >= cfg.target_trapped_field_t:
        return f"target {cfg.target_trapped_field_t:g} T reached ({best:.3f} T)"
    if cfg.patience is not None and best is not None:
        best_step = max(r.step for r in finished if (r.result or {}).get(OBJECTIVE) == best)
        since = sum(1 for r in finished if r.step > best_step)
        if since >= cfg.patience:
            return f"no improvement in {since} experiments"
    return None


@dataclass(frozen=True)
class StepOutcome:
    step: int
    recipe: dict[str, Any]
    failed: bool
    result: dict[str, Any]
    best_t: float | None


class CampaignRunner:
    """Runs one campaign from its journal; safe to construct again after a crash to resume."""

    def __init__(
        self,
        journal: Journal,
        campaign_id: str,
        data_dir: Path,
        on_step: Callable[[StepOutcome], None] | None = None,
        on_document: Callable[[str, dict], None] | None = None,
        pipeline: bool = True,
    ) -> None:
        self.journal, self.campaign_id, self.pipeline = journal, campaign_id, pipeline
        record = journal.campaign(campaign_id)
        self.config = CampaignConfig.model_validate(record["config"])
        self.dir = campaign_dir(data_dir, campaign_id)
        self.world = World.model_validate(self.config.world)
        state = record["agent_state"]
        self.agent = restore_agent(self.config, state) if state else make_agent(self.config)
        self.on_step = on_step
        self.lab = build_sim_lab(self.world, self.dir / "data")
        self.RE = RunEngine({}, call_returns_result=True)
        self.observations = ObservationCollector()
        self.RE.subscribe(self.observations)
        self.RE.subscribe(RunDirectoryWriter(self.dir))
        if on_document is not None:
            self.RE.subscribe(on_document)

    def close(self) -> None:
        self.lab.close()

    # -- the loop ---------------------------------------------------------------------------------
    def run(self) -> str:
        """Run until a stopping rule fires; returns the reason."""
        try:
            while True:
                rows = self.journal.steps(self.campaign_id)
                pending = [r for r in rows if r.status in ("proposed", "running")]
                if not pending:
                    reason = self.stop_reason(rows)
                    if reason:
                        self.journal.set_status(self.campaign_id, "finished", reason)
                        return reason
                    pending = self.propose(rows)
                if self.pipeline and len(pending) > 1:
                    self.execute_batch(pending)
                else:
                    for row in pending:
                        self.execute(row)
        finally:
            self.close()

    def stop_reason(self, rows: list[StepRow]) -> str | None:
        return stop_reason(self.config, rows)

    def propose(self, rows: list[StepRow]) -> list[StepRow]:
        """Ask the agent for the next batch and journal it before anything runs."""
        finished = sum(1 for r in rows if r.status in ("done", "failed"))
        n = min(self.config.batch, self.config.budget_experiments - finished)
        next_step = max((r.step for r in rows), default=-1) + 1
        new_rows = []
        for i, suggestion in enumerate(self.agent.suggest(n)):
            step = next_step + i
            recipe = {k: v for k, v in suggestion.items() if k != "_id"}
            new_rows.append(
                StepRow(
                    campaign_id=self.campaign_id,
                    step=step,
                    suggestion_id=str(suggestion["_id"]),
                    sample_id=f"{self.campaign_id}-{step:04d}",
                    recipe=Recipe.model_validate(recipe).model_dump(),
                    status="proposed",
                    result=None,
                    origin="agent",
                )
            )
        self.journal.propose(self.campaign_id, new_rows, self.agent.checkpoint())
        return new_rows

    def execute(self, row: StepRow) -> StepOutcome:
        """Make (or recover) one sample and feed the outcome to the agent and the journal."""
        recovered = self.recover(row) if row.status == "running" else None
        if recovered is not None:
            return self.finish(row, False, recovered)
        self.journal.mark_running(self.campaign_id, row.step)
        return self.finish(row, *self.make(row))

    def execute_batch(self, rows: list[StepRow]) -> list[StepOutcome]:
        """Recover what a crash left measured, make the rest pipelined, then finish each step in order."""
        outcomes, to_make = {}, []
        for row in rows:
            recovered = self.recover(row) if row.status == "running" else None
            if recovered is not None:
                outcomes[row.step] = self.finish(row, False, recovered)
            else:
                to_make.append(row)
        if len(to_make) == 1:
            outcomes[to_make[0].step] = self.execute(to_make[0])
        elif to_make:
            for row in to_make:
                self.journal.mark_running(self.campaign_id, row.step)
            for row, (failed, result) in zip(to_make, self.make_pipelined(to_make), strict=True):
                outcomes[row.step] = self.finish(row, failed, result)
        return [outcomes[row.step] for row in rows]

    def finish(self, row: StepRow, failed: bool, result: dict[str, Any]) -> StepOutcome:
        """Feed one step's outcome to the agent and journal it with the agent's checkpoint."""
        point = {**row.recipe, "_id": row.suggestion_id, **result, "failed": failed}
        self.agent.ingest([point])
        self.journal.finish(
            self.campaign_id, row.step, failed=failed, result=result, agent_state=self.agent.checkpoint()
        )
        best, _ = best_so_far(self.journal.steps(self.campaign_id), self.config.min_tc_k)
        outcome = StepOutcome(row.step, row.recipe, failed, result, best)
        if self.on_step is not None:
            self.on_step(outcome)
        return outcome

    def _context(self, row: StepRow) -> SampleContext:
        return SampleContext(self.campaign_id, row.sample_id, row.step, Recipe.model_validate(row.recipe))

    def make(self, row: StepRow) -> tuple[bool, dict[str, Any]]:
        sim_start, wall_start = self._now(), time.monotonic()
        try:
            self.RE(make_sample(self.lab, self._context(row), self.config.characterize))
        except Exception as exc:  # a failed experiment is data for the agent, not the end of the campaign
            return True, {"reason": failure_reason(exc)[:500], **self._timing(sim_start, wall_start)}
        return self._observed(row, None, self._timing(sim_start, wall_start))

    def make_pipelined(self, rows: list[StepRow]) -> list[tuple[bool, dict[str, Any]]]:
        """Make several samples in one pipelined batch; one (failed, result) per row, in order."""
        ctxs = [self._context(row) for row in rows]
        sim_start, wall_start = self._now(), time.monotonic()
        batch: BatchOutcome | None = None
        reason = None
        try:
            ran = self.RE(make_batch(self.lab, ctxs, self.config.characterize, clock=self._now))
        except Exception as exc:  # the batch as a whole failed: whatever was measured still counts
            reason = failure_reason(exc)[:500]
        else:
            if isinstance(ran.plan_result, BatchOutcome):
                batch = ran.plan_result
            else:  # stopped or aborted from outside
                reason = f"batch ended: {ran.exit_status} {ran.reason}".strip()[:500]
        shared = {
            "batch_id": uuid.uuid4().hex[:12],
            "batch_size": len(rows),
            "batch_makespan_s": batch.makespan_s if batch else self._now() - sim_start,
        }
        results = []
        for i, row in enumerate(rows):
            if batch is None:
                timing = {**self._timing(sim_start, wall_start), **shared}
                results.append(self._observed(row, reason, timing))
                continue
            sample = batch.samples[i]
            timing = {
                "instrument_s": sample.elapsed_s,
                "wall_s": sample.wall_s,
                **shared,
                "batch_offset_s": (sample.start_s if sample.start_s is not None else batch.start_s) - batch.start_s,
            }
            if sample.error is not None:
                results.append((True, {"reason": failure_reason(sample.error)[:500], **timing}))
            else:
                results.append(self._observed(row, None, timing))
        return results

    def _observed(self, row: StepRow, reason: str | None, timing: dict[str, Any]) -> tuple[bool, dict[str, Any]]:
        """The step's measurement if one was recorded, else a failure (with `reason` if given)."""
        obs = self.observations.observations.get((self.campaign_id, row.step))
        if obs is None:
            return True, {"reason": reason or "no measurement recorded", **timing}
        return False, {**obs.outcomes(), "run_uid": obs.run_uid, **timing}

    def _now(self) -> float:
        """The lab's clock: simulated seconds in a simulation."""
        return self.lab.sim.clock.now_s() if self.lab.sim else time.monotonic()

    def _timing(self, sim_start: float, wall_start: float) -> dict[str, float]:
        return {"instrument_s": self._now() - sim_start, "wall_s": time.monotonic() - wall_start}

    def recover(self, row: StepRow) -> dict[str, Any] | None:
        """The observation of a step whose measurement run completed before the process died, if any."""
        collector = ObservationCollector()
        for path in sorted((self.dir / row.sample_id).glob("measure_properties-*.jsonl")):
            replay(path, collector)
        obs = collector.observations.get((self.campaign_id, row.step))
        if obs is None:
            return None
        return {**obs.outcomes(), "run_uid": obs.run_uid, "recovered": True}
