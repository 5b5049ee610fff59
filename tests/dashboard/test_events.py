"""The event hub alone: change detection, monotonic ids, resume from the ring buffer, snapshot fallback."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from controller.api.events import EventHub, sse


def parse(wire: bytes) -> list[dict[str, Any]]:
    """Server-sent events back into dicts (`id` as int when present)."""
    out = []
    for block in wire.decode().strip().split("\n\n"):
        event: dict[str, Any] = {}
        for line in block.splitlines():
            name, _, value = line.partition(": ")
            if name == "id":
                event["id"] = int(value)
            elif name == "event":
                event["type"] = value
            elif name == "data":
                event["data"] = json.loads(value)
        if event:
            out.append(event)
    return out


class NoAnalysis:
    """A context without `analysis_events` (before the analysis agents land)."""


def hub(buffer_events: int = 8) -> EventHub:
    return EventHub(NoAnalysis(), buffer_events=buffer_events)


def test_sse_encoding() -> None:
    assert sse("status", {"a": 1}, 7) == b'id: 7\nevent: status\ndata: {"a":1}\n\n'
    assert sse("heartbeat", {}) == b"event: heartbeat\ndata: {}\n\n"  # no id: never moves a cursor


@pytest.mark.timeout(10)
def test_only_changes_are_events_and_ids_grow_by_one() -> None:
    async def run() -> None:
        h = hub()
        start = h.last_id
        h._publish({"status": {"re_state": "idle"}, "queue": {"items": []}}, [])
        h._publish({"status": {"re_state": "idle"}, "queue": {"items": []}}, [])  # nothing changed
        h._publish({"status": {"re_state": "running"}, "queue": {"items": []}}, [])
        events = parse(h.since(start)[0])
        assert [(e["id"], e["type"]) for e in events] == [
            (start + 1, "status"),
            (start + 2, "queue"),
            (start + 3, "status"),
        ]
        assert events[-1]["data"] == {"re_state": "running"}
        # a client that has seen id start+2 gets exactly the rest
        assert [e["id"] for e in parse(h.since(start + 2)[0])] == [start + 3]
        assert h.since(h.last_id) == (b"", h.last_id)

    asyncio.run(run())


@pytest.mark.timeout(10)
def test_fallen_off_the_buffer_or_unknown_gets_a_snapshot() -> None:
    async def run() -> None:
        h = hub(buffer_events=4)
        start = h.last_id
        for i in range(10):
            h._publish({"status": {"n": i}, f"observations:C-{i % 2}": {"campaign_id": f"C-{i % 2}", "n": i}}, [])
        assert len(h.buffer) == 4 and h.buffer[0].id == h.last_id - 3
        for cursor in (start, None, h.last_id + 5):  # too old, fresh client, an id this hub never gave
            (event,) = parse(h.since(cursor)[0])
            assert event["type"] == "snapshot" and event["id"] == h.last_id
            assert event["data"]["topics"]["status"] == {"n": 9}
            assert event["data"]["topics"]["observations:C-0"]["n"] == 8
            assert event["data"]["limits"]["furnace_ceiling_c"] == 1200.0
        oldest_resumable = h.buffer[0].id - 1
        assert [e["type"] for e in parse(h.since(oldest_resumable)[0])] == ["status", "observations"] * 2

    asyncio.run(run())


@pytest.mark.timeout(10)
def test_analysis_events_are_appended_once_each() -> None:
    async def run() -> None:
        h = hub(buffer_events=64)
        start = h.last_id
        a1 = {"seq": 1, "uid": "u1", "analysis": "segmentation", "images": {"overlay": "/api/analyses/u1/overlay.png"}}
        a2 = {"seq": 2, "uid": "u2", "analysis": "orientation"}
        h._publish({}, [a2, a1])
        h._publish({}, [a2])  # seen already
        assert [e["data"]["uid"] for e in parse(h.since(start)[0])] == ["u1", "u2"]
        assert h._analysis_seq == 2 and [a["uid"] for a in h.snapshot()["analysis"]] == ["u1", "u2"]
        backlog = [{"seq": s, "uid": f"b{s}"} for s in range(3, 53)]
        last = h.last_id
        h._publish({}, backlog)  # 50 at once: only the newest 20 become events
        assert [e["data"]["seq"] for e in parse(h.since(last)[0])] == list(range(33, 53))
        assert h._analysis_seq == 52

    asyncio.run(run())


@pytest.mark.timeout(10)
def test_reads_analysis_events_from_the_context_when_it_has_them() -> None:
    class WithAnalysis:
        def __init__(self) -> None:
            self.asked: list[int] = []

        def analysis_events(self, after_seq: int) -> list[dict[str, Any]]:
            self.asked.append(after_seq)
            return [{"seq": s, "uid": f"u{s}"} for s in (3, 4) if s > after_seq]

    ctx = WithAnalysis()
    h = EventHub(ctx)
    h.collector.topics = lambda **_: {}  # type: ignore[method-assign]
    _, analyses = h._read()
    assert [a["seq"] for a in analyses] == [3, 4] and ctx.asked == [0]
    plain = hub()
    plain.collector.topics = lambda **_: {}  # type: ignore[method-assign]
    assert plain._read()[1] == []  # and a context without it is fine
