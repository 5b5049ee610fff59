"""The dashboard's event stream: one producer per app, a ring buffer of numbered events, fan-out to clients.

One asyncio task (`EventHub`) reads the service context a few times a second (`collect`, in a thread:
it queries the state database), compares every *topic* with what it last sent, and appends an event for
each topic that changed to a bounded ring buffer. Event ids are integers that only grow: the first is
the hub's start time in milliseconds, each next one is +1, so the ids of a restarted service are above
the old ones. Every client reads the same buffer from its own cursor, so fifty clients cost one poll and
one JSON encoding per change, not fifty.

A client that reconnects with `Last-Event-ID: n` receives every event after `n` if `n` is still in the
buffer, otherwise one `snapshot` event holding the latest value of every topic. Events are whole values
(not deltas), so a snapshot plus what follows is always the full state. Between events a `heartbeat`
event (no id, so it never moves a client's cursor) is sent every `heartbeat_s`: EventSource hides SSE
comments from the page, and the page needs something to tell a quiet stream from a dead one.

The producer polls only while clients are connected (and `idle_stop_s` after the last one left); every
stream is closed by the server after `max_stream_s` — EventSource reconnects at once with its
`Last-Event-ID` and loses nothing — so that a shutting-down server never waits on an open browser.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from controller.campaign.journal import steps as steps_table
from devices.envelope import FURNACE, MILL

log = logging.getLogger("grainloop.api.events")

HISTORY_TAIL = 30
AUDIT_TAIL = 30
ANALYSIS_KEPT = 20
FINISHED_CAMPAIGNS_KEPT = 5
ENDED_REREAD_S = 10.0
CAMPAIGN_STATUSES = ("created", "running", "paused", "finished", "stopped")
ACTIVE = ("created", "running", "paused")


@dataclass(frozen=True)
class Event:
    """One numbered event, encoded once for every client."""

    id: int
    type: str
    wire: bytes


def sse(event_type: str, data: Any, event_id: int | None = None) -> bytes:
    """One server-sent event (`id:` only when numbered; `data:` one line of JSON)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    body = json.dumps(data, default=str, separators=(",", ":"))
    return f"{head}event: {event_type}\ndata: {body}\n\n".encode()


def limits() -> dict[str, Any]:
    """The fixed limits the instruments panel draws (from the safety envelope)."""
    return {
        "furnace_max_c": {name: route.max_temperature_c for name, route in FURNACE.routes.items()},
        "furnace_ceiling_c": max(route.max_temperature_c for route in FURNACE.routes.values()),
        "furnace_safe_c": FURNACE.safe_temperature_c,
        "mill_max_rpm": MILL.max_rpm,
        "mill_vial_max_c": MILL.vial_temperature_limit_c,
    }


class Collector:
    """Reads the service context into topics; keeps what it can reuse between polls (change tokens)."""

    def __init__(self, ctx: Any) -> None:
        self.ctx = ctx
        self._history_uid: str | None = None
        self._history: list[dict[str, Any]] = []
        self._running_uid: str | None = None
        self._running_since_s: float | None = None
        self._created: dict[str, float] = {}
        self._ended: dict[str, tuple[float, dict[str, Any], dict[str, Any]]] = {}

    def topics(self, with_campaigns: bool = True) -> dict[str, Any]:
        """Every topic's current value; a part that fails is left out (it keeps its last value).

        The campaign topics cost a few queries per campaign: the hub reads them every other poll."""
        out: dict[str, Any] = {}
        for name, read in (
            ("status", self.status),
            ("devices", self.devices),
            ("queue", self.queue),
            ("history", self.history),
            ("approvals", self.approvals),
            ("audit", self.audit),
            ("agents", self.agents),
        ):
            try:
                out[name] = read()
            except Exception:  # one failing read must not hide the others
                log.exception("dashboard: reading %s failed", name)
        try:
            if with_campaigns:
                out.update(self.campaigns())
        except Exception:
            log.exception("dashboard: reading campaigns failed")
        return out

    def status(self) -> dict[str, Any]:
        ctx = self.ctx
        s = ctx.status()
        lock = ctx.lock_info()
        keep = (
            "manager_state",
            "re_state",
            "worker_environment_exists",
            "worker_environment_state",
            "worker_pid",
            "worker_restarts",
            "suspended",
            "suspend_reason",
            "pause_pending",
            "queue_running",
            "queue_stop_pending",
            "items_in_queue",
            "items_in_history",
            "running_item_uid",
            "lock",
            "locked_by",
        )
        out = {k: s.get(k) for k in keep}
        out["worker_up"] = bool(ctx.manager.worker.ready)
        out["lock_note"] = lock.get("note")
        out["lock_since_s"] = lock.get("time")
        return out

    def devices(self) -> dict[str, Any]:
        ctx = self.ctx
        return {"devices": ctx.readings, "relays": ctx.relays.state() if ctx.relays else None}

    def queue(self) -> dict[str, Any]:
        m = self.ctx.manager
        with m.lock:
            items = m.queue.get()
            running = dict(m.running_item) if m.running_item else None
            uid = m.queue.queue_uid
        running_uid = running["item_uid"] if running else None
        if running_uid != self._running_uid:
            self._running_uid = running_uid
            self._running_since_s = time.time() if running_uid else None
        if running is not None:
            running["started_s"] = self._running_since_s  # when the dashboard first saw it running
        return {"items": items, "running_item": running, "plan_queue_uid": uid}

    def history(self) -> dict[str, Any]:
        q = self.ctx.manager.queue
        if q.history_uid != self._history_uid:
            self._history_uid = q.history_uid
            tail = q.get_history()[-HISTORY_TAIL:]
            for entry in tail:
                result = entry.get("result") or {}
                result.pop("traceback", None)  # kept in /api/history/get; too big for every client
            self._history = tail
        return {"items": self._history, "plan_history_uid": self._history_uid}

    def approvals(self) -> dict[str, Any]:
        return {"approvals": self.ctx.campaigns.journal.approvals("pending")}

    def audit(self) -> dict[str, Any]:
        return {"entries": self.ctx.audit_list(limit=AUDIT_TAIL)}

    def agents(self) -> dict[str, Any]:
        """The analysis agents' processes (`up`, `pid`, `restarts`), as `GET /api/analyses` gives them."""
        agents = getattr(self.ctx, "agents", None)
        return {"agents": agents.status() if agents is not None else {}}

    def _last_finished(self) -> dict[str, float]:
        """Each campaign's newest finished step (wall seconds): the page's "campaign stalled" condition."""
        journal = self.ctx.campaigns.journal
        query = select(steps_table.c.campaign_id, func.max(steps_table.c.finished_s)).group_by(
            steps_table.c.campaign_id
        )
        with journal.engine.connect() as conn:
            return {cid: float(t) for cid, t in conn.execute(query) if t is not None}

    def _created_s(self, campaign_id: str) -> float:
        if campaign_id not in self._created:  # never changes: read once per campaign
            self._created[campaign_id] = float(self.ctx.campaigns.journal.campaign(campaign_id)["created_s"])
        return self._created[campaign_id]

    def campaigns(self) -> dict[str, Any]:
        """`campaigns` (summaries) and one `observations:<id>` topic per followed campaign."""
        cs = self.ctx.campaigns
        by_status = {s: cs.journal_campaigns(s) for s in CAMPAIGN_STATUSES}
        done = sorted((c for s in ("finished", "stopped") for c in by_status[s]), key=self._created_s, reverse=True)
        summaries, out = [], {}
        last_finished = self._last_finished()
        for cid in [c for s in ACTIVE for c in by_status[s]]:
            summaries.append(
                {**cs.summary(cid), "created_s": self._created_s(cid), "last_finished_s": last_finished.get(cid)}
            )
            out[f"observations:{cid}"] = {"campaign_id": cid, "steps": [r.__dict__ for r in cs.journal.steps(cid)]}
        now = time.monotonic()
        for cid in done[:FINISHED_CAMPAIGNS_KEPT]:
            # an ended campaign changes little (a late rejection at most): read again every ENDED_REREAD_S
            read_s, summary, observations = self._ended.get(cid, (-math.inf, {}, {}))
            if now - read_s > ENDED_REREAD_S:
                summary = cs.summary(cid)
                observations = {"campaign_id": cid, "steps": [r.__dict__ for r in cs.journal.steps(cid)]}
                self._ended[cid] = (now, summary, observations)
            summaries.append(summary)
            out[f"observations:{cid}"] = observations
        out["campaigns"] = {"campaigns": summaries}
        return out


def topic_type(key: str) -> str:
    """The SSE event type of a topic key (`observations:<campaign id>` → `observations`)."""
    return key.split(":", 1)[0]


class EventHub:
    """The one producer of an app and the ring buffer every stream reads from (event-loop thread only)."""

    def __init__(
        self,
        ctx: Any,
        *,
        interval_s: float = 0.25,
        buffer_events: int = 2048,
        heartbeat_s: float = 2.0,
        idle_stop_s: float = 10.0,
        max_stream_s: float = 20.0,
    ) -> None:
        self.ctx = ctx
        self.interval_s, self.heartbeat_s = interval_s, heartbeat_s
        self.idle_stop_s, self.max_stream_s = idle_stop_s, max_stream_s
        self.collector = Collector(ctx)
        self.buffer: deque[Event] = deque(maxlen=buffer_events)
        self.latest: dict[str, Any] = {}
        self._digests: dict[str, str] = {}
        self.analyses: deque[dict[str, Any]] = deque(maxlen=ANALYSIS_KEPT)
        self._analysis_seq = 0
        self.last_id = time.time_ns() // 1_000_000
        self.clients = 0
        self.polls = 0
        self.poll_seconds_total = 0.0
        self._changed = asyncio.Event()
        self._first_poll = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the producer ------------------------------------------------------------------------------
    def ensure_running(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._produce(), name="dashboard-events")

    async def _produce(self) -> None:
        idle_since: float | None = None
        while True:
            t0 = time.perf_counter()
            try:
                topics, analyses = await asyncio.to_thread(self._read)
                self._publish(topics, analyses)
            except Exception:
                log.exception("dashboard: poll failed")
            self.polls += 1
            self.poll_seconds_total += time.perf_counter() - t0
            self._first_poll.set()
            if self.clients == 0:
                idle_since = idle_since or time.monotonic()
                if time.monotonic() - idle_since > self.idle_stop_s:
                    return
            else:
                idle_since = None
            await asyncio.sleep(max(0.0, self.interval_s - (time.perf_counter() - t0)))

    def _read(self) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """In a thread: the topics, and analysis events after the last seen `seq` (if the context has them)."""
        topics = self.collector.topics(with_campaigns=self.polls % 2 == 0)
        source: Callable[[int], list[dict[str, Any]]] | None = getattr(self.ctx, "analysis_events", None)
        analyses: list[dict[str, Any]] = []
        if callable(source):
            try:
                analyses = list(source(self._analysis_seq))
            except Exception:
                log.exception("dashboard: analysis_events failed")
        return topics, analyses

    def _publish(self, topics: dict[str, Any], analyses: list[dict[str, Any]]) -> None:
        """Append an event per changed topic and per new analysis; wake every stream once."""
        appended = False
        for key, value in topics.items():
            digest = json.dumps(value, default=str, sort_keys=True)
            if self._digests.get(key) == digest:
                continue
            self._digests[key] = digest
            self.latest[key] = value
            self._append(topic_type(key), value)
            appended = True
        # a backlog (the first read of a long-running service) is cut to the newest ANALYSIS_KEPT
        for analysis in sorted(analyses, key=lambda a: a.get("seq", 0))[-ANALYSIS_KEPT:]:
            seq = int(analysis.get("seq", 0))
            if seq <= self._analysis_seq:
                continue
            self._analysis_seq = seq
            self.analyses.append(analysis)
            self._append("analysis", analysis)
            appended = True
        if appended:
            changed, self._changed = self._changed, asyncio.Event()
            changed.set()

    def _append(self, event_type: str, data: Any) -> None:
        self.last_id += 1
        self.buffer.append(Event(self.last_id, event_type, sse(event_type, data, self.last_id)))

    # -- the consumers -----------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "topics": self.latest,
            "analysis": list(self.analyses),
            "limits": limits(),
            "server_time_s": time.time(),
            "interval_s": self.interval_s,
            "heartbeat_s": self.heartbeat_s,
        }

    def since(self, cursor: int | None) -> tuple[bytes, int]:
        """What a client at `cursor` must receive next (events, or a snapshot) and its new cursor."""
        first = self.buffer[0].id if self.buffer else self.last_id + 1
        if cursor is None or cursor < first - 1 or cursor > self.last_id:
            return sse("snapshot", self.snapshot(), self.last_id), self.last_id
        start = cursor - first + 1
        chunk = b"".join(e.wire for e in itertools.islice(self.buffer, start, None))
        return chunk, self.last_id

    def stats(self) -> dict[str, Any]:
        return {
            "clients": self.clients,
            "polls": self.polls,
            "poll_seconds_total": round(self.poll_seconds_total, 4),
            "last_id": self.last_id,
            "buffered": len(self.buffer),
            "first_id": self.buffer[0].id if self.buffer else None,
            "interval_s": self.interval_s,
        }

    async def stream(self, last_event_id: int | None) -> AsyncIterator[bytes]:
        """The bytes of one client's stream, from `last_event_id` on, until `max_stream_s` or disconnect."""
        self.clients += 1
        try:
            self.ensure_running()
            yield b"retry: 500\n\n"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._first_poll.wait(), timeout=5.0)
            chunk, cursor = self.since(last_event_id)
            yield chunk
            ends_at = time.monotonic() + self.max_stream_s
            next_beat = time.monotonic() + self.heartbeat_s
            while (now := time.monotonic()) < ends_at:
                if self.last_id > cursor:
                    chunk, cursor = self.since(cursor)
                    yield chunk
                    continue
                if now >= next_beat:
                    yield sse("heartbeat", {"server_time_s": time.time(), "last_id": self.last_id})
                    next_beat = now + self.heartbeat_s
                    continue
                changed = self._changed
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), timeout=min(next_beat, ends_at) - now)
        finally:
            self.clients -= 1
