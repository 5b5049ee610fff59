"""The service's own tables beside the campaign journal: API keys, audit log, queue, history, lock.

One SQLAlchemy engine (SQLite WAL + synchronous=FULL by default, PostgreSQL by URL; see
`controller.campaign.journal.make_engine`). Queue positions are stored as an ordinal per item and the
whole order is rewritten on every change — queues are short and a change is one transaction, so a
crash leaves either the old order or the new one.
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlalchemy import JSON, Column, Float, Integer, MetaData, String, Table, delete, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from controller.campaign.journal import make_engine

metadata = MetaData()
api_keys = Table(
    "api_keys",
    metadata,
    Column("key_id", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("role", String, nullable=False),
    Column("secret_hash", String, nullable=False),
    Column("created_s", Float, nullable=False),
    Column("revoked_s", Float),
)
audit = Table(
    "audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time_s", Float, nullable=False, index=True),
    Column("principal", String, nullable=False),
    Column("role", String),
    Column("action", String, nullable=False),
    Column("target", JSON),
    Column("outcome", String, nullable=False),
)
queue_items = Table(
    "queue_items",
    metadata,
    Column("item_uid", String, primary_key=True),
    Column("ordinal", Integer, nullable=False),
    Column("item", JSON, nullable=False),
)
history = Table(
    "history",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("item_uid", String, nullable=False, unique=True),
    Column("entry", JSON, nullable=False),
)
locks = Table(
    "locks",
    metadata,
    Column("lock_id", Integer, primary_key=True),  # always 1: one lock per lab
    Column("locked_by", String, nullable=False),
    Column("note", String),
    Column("key_hash", String, nullable=False),
    Column("environment", Integer, nullable=False),
    Column("queue", Integer, nullable=False),
    Column("since_s", Float, nullable=False),
)


def open_state(url: str) -> Engine:
    engine = make_engine(url)
    metadata.create_all(engine)
    return engine


# -- audit -------------------------------------------------------------------------------------------
def audit_record(engine: Engine, *, principal: str, role: str | None, action: str, target: Any, outcome: str) -> None:
    target = json.loads(json.dumps(target, default=str)) if target is not None else None
    with engine.begin() as conn:
        conn.execute(
            insert(audit).values(
                time_s=time.time(), principal=principal, role=role, action=action, target=target, outcome=outcome
            )
        )


def audit_list(engine: Engine, limit: int = 200, since_s: float | None = None) -> list[dict[str, Any]]:
    query = select(audit).order_by(audit.c.id.desc()).limit(max(1, min(int(limit), 10_000)))
    if since_s is not None:
        query = query.where(audit.c.time_s >= since_s)
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(query).mappings()]


# -- lock --------------------------------------------------------------------------------------------
def lock_get(engine: Engine) -> dict[str, Any] | None:
    with engine.connect() as conn:
        row = conn.execute(select(locks).where(locks.c.lock_id == 1)).mappings().first()
    return dict(row) if row else None


def lock_set(engine: Engine, **values: Any) -> bool:
    """Take the lock; False if somebody holds it (the primary key makes this atomic)."""
    try:
        with engine.begin() as conn:
            conn.execute(insert(locks).values(lock_id=1, **values))
    except IntegrityError:
        return False
    return True


def lock_clear(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(locks).where(locks.c.lock_id == 1))


# -- queue persistence (controller.manager.queue.QueueStore) ------------------------------------------
class DbQueueStore:
    """The queue's order and the history in the state database, so a restarted service finds both."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def load_queue(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(queue_items.c.item).order_by(queue_items.c.ordinal))]

    def save_queue(self, items: list[dict[str, Any]]) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(queue_items))
            if items:
                conn.execute(
                    insert(queue_items),
                    [{"item_uid": it["item_uid"], "ordinal": i, "item": it} for i, it in enumerate(items)],
                )

    def load_history(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(select(history.c.entry).order_by(history.c.id))]

    def append_history(self, entry: dict[str, Any]) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(insert(history).values(item_uid=entry["item_uid"], entry=entry))
        except IntegrityError:
            pass  # recorded before: a result seen twice counts once

    def clear_history(self) -> None:
        with self.engine.begin() as conn:
            conn.execute(delete(history))
