"""The campaign journal: every step written before and after it runs, so a restart loses and repeats nothing.

SQLAlchemy Core on SQLite (WAL, synchronous=FULL) by default, any SQLAlchemy URL (PostgreSQL) at scale.
Steps are keyed `(campaign_id, step)`; every write is idempotent on that key. A step moves
proposed → running → done | failed; the agent's checkpoint is saved in the same transaction as the
step rows it explains, so the journal and the agent can never disagree after a crash.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
    update,
)
from sqlalchemy.engine import Engine

STEP_STATES = ("proposed", "running", "done", "failed", "rejected")

metadata = MetaData()
campaigns = Table(
    "campaigns",
    metadata,
    Column("campaign_id", String, primary_key=True),
    Column("created_s", Float, nullable=False),
    Column("config", JSON, nullable=False),
    Column("status", String, nullable=False),  # running | finished
    Column("agent_state", JSON),
    Column("stop_reason", String),
)
steps = Table(
    "steps",
    metadata,
    Column("campaign_id", String, primary_key=True),
    Column("step", Integer, primary_key=True),
    Column("suggestion_id", String, nullable=False),
    Column("sample_id", String, nullable=False),
    Column("recipe", JSON, nullable=False),
    Column("status", String, nullable=False),
    Column("result", JSON),
    Column("proposed_s", Float, nullable=False),
    Column("started_s", Float),
    Column("finished_s", Float),
    Column("origin", String, nullable=False),  # agent | operator
)

approvals = Table(
    "approvals",
    metadata,
    Column("approval_id", String, primary_key=True),
    Column("campaign_id", String, nullable=False),
    Column("step", Integer, nullable=False),
    Column("recipe", JSON, nullable=False),
    Column("reasoning", JSON),
    Column("status", String, nullable=False),  # pending | approved | edited | rejected
    Column("created_s", Float, nullable=False),
    Column("decided_by", String),
    Column("decided_s", Float),
    Column("note", String),
)


@dataclass(frozen=True)
class StepRow:
    campaign_id: str
    step: int
    suggestion_id: str
    sample_id: str
    recipe: dict[str, Any]
    status: str
    result: dict[str, Any] | None
    origin: str


def sqlite_url(path: Path | str) -> str:
    return f"sqlite:///{Path(path)}"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def make_engine(url: str) -> Engine:
    """An engine on `url`; SQLite gets WAL, synchronous=FULL and a busy timeout (its directory is created)."""
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


class Journal:
    """All campaigns' steps and agent checkpoints in one database."""

    def __init__(self, url: str) -> None:
        self.engine: Engine = make_engine(url)
        metadata.create_all(self.engine)

    def create_campaign(self, campaign_id: str, config: dict[str, Any]) -> None:
        with self.engine.begin() as conn:
            if conn.execute(select(campaigns.c.campaign_id).where(campaigns.c.campaign_id == campaign_id)).first():
                raise ValueError(f"campaign {campaign_id} already exists")
            conn.execute(
                insert(campaigns).values(
                    campaign_id=campaign_id, created_s=time.time(), config=config, status="running"
                )
            )

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(campaigns).where(campaigns.c.campaign_id == campaign_id)).mappings().first()
        if row is None:
            raise KeyError(f"no campaign {campaign_id!r} in this journal")
        return dict(row)

    def campaign_ids(self, status: str) -> list[str]:
        with self.engine.connect() as conn:
            query = select(campaigns.c.campaign_id).where(campaigns.c.status == status).order_by(campaigns.c.created_s)
            return [r[0] for r in conn.execute(query)]

    def propose(self, campaign_id: str, rows: list[StepRow], agent_state: dict[str, Any]) -> None:
        """Record proposed steps and the agent state that proposed them, atomically; re-proposing is a no-op."""
        now = time.time()
        with self.engine.begin() as conn:
            existing = {
                r[0]
                for r in conn.execute(
                    select(steps.c.step).where(
                        steps.c.campaign_id == campaign_id, steps.c.step.in_([r.step for r in rows])
                    )
                )
            }
            for row in rows:
                if row.step in existing:
                    continue
                conn.execute(
                    insert(steps).values(
                        campaign_id=campaign_id,
                        step=row.step,
                        suggestion_id=row.suggestion_id,
                        sample_id=row.sample_id,
                        recipe=row.recipe,
                        status="proposed",
                        proposed_s=now,
                        origin=row.origin,
                    )
                )
            self._save_agent(conn, campaign_id, agent_state)

    def mark_running(self, campaign_id: str, step: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(steps)
                .where(
                    steps.c.campaign_id == campaign_id,
                    steps.c.step == step,
                    steps.c.status.in_(("proposed", "running")),
                )
                .values(status="running", started_s=time.time())
            )

    def finish(
        self, campaign_id: str, step: int, *, failed: bool, result: dict[str, Any], agent_state: dict[str, Any]
    ) -> bool:
        """Record a step's outcome and the agent state after ingesting it; False if it was already finished."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(steps)
                .where(
                    steps.c.campaign_id == campaign_id,
                    steps.c.step == step,
                    steps.c.status.in_(("proposed", "running")),
                )
                .values(status="failed" if failed else "done", result=result, finished_s=time.time())
            ).rowcount
            if done:
                self._save_agent(conn, campaign_id, agent_state)
            return bool(done)

    def replace_recipe(self, campaign_id: str, step: int, recipe: dict[str, Any]) -> None:
        """An operator edited a proposed step's recipe before approving it."""
        with self.engine.begin() as conn:
            conn.execute(
                update(steps)
                .where(steps.c.campaign_id == campaign_id, steps.c.step == step, steps.c.status == "proposed")
                .values(recipe=recipe, origin="operator")
            )

    def reject(self, campaign_id: str, step: int, reason: str, agent_state: dict[str, Any]) -> bool:
        """A proposed step an operator rejected: it never runs and is no observation; False if not proposed."""
        with self.engine.begin() as conn:
            done = conn.execute(
                update(steps)
                .where(steps.c.campaign_id == campaign_id, steps.c.step == step, steps.c.status == "proposed")
                .values(status="rejected", result={"reason": reason}, finished_s=time.time())
            ).rowcount
            if done:
                self._save_agent(conn, campaign_id, agent_state)
            return bool(done)

    def set_status(self, campaign_id: str, status: str, reason: str | None = None) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                update(campaigns)
                .where(campaigns.c.campaign_id == campaign_id)
                .values(status=status, stop_reason=reason)
            )

    def steps(self, campaign_id: str) -> list[StepRow]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(steps).where(steps.c.campaign_id == campaign_id).order_by(steps.c.step)
            ).mappings()
            return [
                StepRow(
                    campaign_id=r["campaign_id"],
                    step=r["step"],
                    suggestion_id=r["suggestion_id"],
                    sample_id=r["sample_id"],
                    recipe=r["recipe"],
                    status=r["status"],
                    result=r["result"],
                    origin=r["origin"],
                )
                for r in rows
            ]

    # -- approvals: proposals of `suggest`-mode campaigns waiting for an operator ---------------------
    def add_approval(self, campaign_id: str, step: int, recipe: dict[str, Any], reasoning: Any) -> str:
        """The approval of a proposed step; asking again for the same step returns the same approval."""
        approval_id = f"{campaign_id}:{step}"
        with self.engine.begin() as conn:
            if not conn.execute(select(approvals.c.approval_id).where(approvals.c.approval_id == approval_id)).first():
                conn.execute(
                    insert(approvals).values(
                        approval_id=approval_id,
                        campaign_id=campaign_id,
                        step=step,
                        recipe=recipe,
                        reasoning=json.loads(json.dumps(reasoning, default=str)),
                        status="pending",
                        created_s=time.time(),
                    )
                )
        return approval_id

    def approval(self, approval_id: str) -> dict[str, Any] | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(approvals).where(approvals.c.approval_id == approval_id)).mappings().first()
        return dict(row) if row else None

    def approvals(self, status: str | None = None, campaign_id: str | None = None) -> list[dict[str, Any]]:
        query = select(approvals).order_by(approvals.c.created_s)
        if status is not None:
            query = query.where(approvals.c.status == status)
        if campaign_id is not None:
            query = query.where(approvals.c.campaign_id == campaign_id)
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def decide_approval(self, approval_id: str, status: str, by: str, note: str | None) -> bool:
        """Record a decision once; False if the approval was not pending (decided before, or unknown)."""
        with self.engine.begin() as conn:
            return bool(
                conn.execute(
                    update(approvals)
                    .where(approvals.c.approval_id == approval_id, approvals.c.status == "pending")
                    .values(status=status, decided_by=by, decided_s=time.time(), note=note)
                ).rowcount
            )

    @staticmethod
    def _save_agent(conn: Any, campaign_id: str, agent_state: dict[str, Any]) -> None:
        json.dumps(agent_state)  # refuse a state that would not survive the database
        conn.execute(update(campaigns).where(campaigns.c.campaign_id == campaign_id).values(agent_state=agent_state))
