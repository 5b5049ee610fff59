"""The API process's view of the analysis agents' work, read off the document stream.

`AnalysisMonitor` is a callback on a `RemoteDispatcher` of the proxy's output. It tells analysis runs
(start documents with `parent_uid` and `agent`) from source runs, and for every finished analysis run
keeps one record, numbered by `seq` (1, 2, … in arrival order; the last `max_kept`):

    seq, uid, parent_uid, agent, analysis, sample_id, campaign_id, step, exit_status, reason,
    data (the analysis event's flat result), images (name → path under the service's data_dir),
    time (its start), latency_s

**Latency** is the analysis run's start time minus the time of the newest document of its source run
that the monitor had seen when the analysis run started: for a survey frame, its event; for a SPED scan,
its last row (or its stop). It is None when the source run was not seen (the monitor joined late). Each
measured latency is observed by `on_latency(agent, seconds)` (the `grainloop_analysis_seconds` histogram).

PUB/SUB can drop documents under load; a record whose stop never arrives is not kept, and the run
store holds the analysis run regardless. **Drops are counted**: for every source run seen from its start,
the events received per stream are compared with its stop's `num_events`, and the shortfall is reported
to `on_missed(run_uid, n_events)` (the `grainloop_stream_events_missed` counter).
"""

from __future__ import annotations

import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from typing import Any

from event_model import unpack_event_page

from controller.stream.subscriber import make_dispatcher, request_stop, run_until_stopped

RECORD_KEYS = ("uid", "parent_uid", "agent", "analysis", "sample_id", "campaign_id", "step")
MAX_SOURCE_RUNS = 200
"""Source runs whose newest document time is remembered (oldest forgotten first)."""


class AnalysisMonitor:
    """Follow analysis runs on the stream; `events(after_seq)` for the API and the dashboard."""

    def __init__(
        self,
        address: str | None = None,
        on_latency: Callable[[str, float], None] | None = None,
        on_finished: Callable[[dict[str, Any]], None] | None = None,
        max_kept: int = 200,
        on_missed: Callable[[str, int], None] | None = None,
    ) -> None:
        self.address, self.on_latency, self.on_finished, self.max_kept = address, on_latency, on_finished, max_kept
        self.on_missed = on_missed
        self._received: OrderedDict[str, Counter[str]] = OrderedDict()  # source run → events per stream
        self._descriptor_name: dict[str, str] = {}
        self._lock = threading.Lock()
        self._records: list[dict[str, Any]] = []
        self._seq = 0
        self._open: dict[str, dict[str, Any]] = {}  # analysis run uid → its record so far
        self._newest: OrderedDict[str, float] = OrderedDict()  # source run uid → newest document time
        self._descriptor_run: dict[str, str] = {}
        self._dispatcher: Any = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Subscribe to `address` (host:port of the proxy's output) in a background thread."""
        if self.address is None:
            raise ValueError("AnalysisMonitor.start needs the proxy's output address")
        host, port = self.address.rsplit(":", 1)
        self._dispatcher = make_dispatcher((host, int(port)))
        self._dispatcher.subscribe(self)
        self._thread = threading.Thread(
            target=run_until_stopped, args=(self._dispatcher,), name="analysis-monitor", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._dispatcher is not None:
            request_stop(self._dispatcher)
        if self._thread is not None:
            self._thread.join(5)

    # -- reading -----------------------------------------------------------------------------------
    def events(self, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Finished analysis records with `seq > after_seq`, oldest first (at most `limit`, the newest)."""
        with self._lock:
            out = [dict(r) for r in self._records if r["seq"] > after_seq]
        return out[-limit:] if limit else out

    def get(self, uid: str) -> dict[str, Any] | None:
        with self._lock:
            return next((dict(r) for r in self._records if r["uid"] == uid), None)

    # -- the stream --------------------------------------------------------------------------------
    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        if name == "event_page":
            for event in unpack_event_page(doc):
                self._event(event)
        elif name == "event":
            self._event(doc)
        elif name == "start":
            self._start(doc)
        elif name == "descriptor":
            self._descriptor_run[doc["uid"]] = doc["run_start"]
            self._descriptor_name[doc["uid"]] = str(doc.get("name", "primary"))
            self._touch(doc["run_start"], doc.get("time"))
        elif name == "stop":
            self._stop(doc)

    def _touch(self, run_uid: str, t: Any) -> None:
        if run_uid in self._open or not isinstance(t, int | float):
            return
        with self._lock:
            self._newest[run_uid] = max(float(t), self._newest.get(run_uid, 0.0))
            self._newest.move_to_end(run_uid)
            while len(self._newest) > MAX_SOURCE_RUNS:
                self._newest.popitem(last=False)

    def _start(self, doc: dict[str, Any]) -> None:
        if not (doc.get("parent_uid") and doc.get("agent")):
            self._touch(doc["uid"], doc.get("time"))
            self._received[doc["uid"]] = Counter()
            while len(self._received) > MAX_SOURCE_RUNS:
                self._received.popitem(last=False)
            return
        record: dict[str, Any] = {key: doc.get(key) for key in RECORD_KEYS}
        record["images"] = dict(doc.get("images") or {})
        record["stream_gap"] = dict(doc.get("stream_gap") or {})
        record["time"] = doc.get("time")
        record["data"] = {}
        with self._lock:
            newest = self._newest.get(doc["parent_uid"])
        latency = (
            float(doc["time"]) - newest if newest is not None and isinstance(doc.get("time"), int | float) else None
        )
        record["latency_s"] = latency
        self._open[doc["uid"]] = record

    def _event(self, doc: dict[str, Any]) -> None:
        run_uid = self._descriptor_run.get(doc.get("descriptor", ""))
        if run_uid is None:
            return
        if run_uid in self._open:
            self._open[run_uid]["data"].update(doc.get("data", {}))
        else:
            self._touch(run_uid, doc.get("time"))
            if run_uid in self._received:
                self._received[run_uid][self._descriptor_name.get(doc["descriptor"], "primary")] += 1

    def _stop(self, doc: dict[str, Any]) -> None:
        run_uid = doc.get("run_start", "")
        for descriptor in [d for d, r in self._descriptor_run.items() if r == run_uid]:
            del self._descriptor_run[descriptor]
            self._descriptor_name.pop(descriptor, None)
        record = self._open.pop(run_uid, None)
        if record is None:
            self._touch(run_uid, doc.get("time"))
            received = self._received.pop(run_uid, None)
            if received is not None:
                expected = doc.get("num_events") or {}
                missed = sum(max(int(n) - received[stream], 0) for stream, n in expected.items())
                if missed and self.on_missed is not None:
                    self.on_missed(run_uid, missed)
            return
        record["exit_status"] = doc.get("exit_status")
        record["reason"] = doc.get("reason") or ""
        with self._lock:
            self._seq += 1
            record["seq"] = self._seq
            self._records = [*self._records, record][-self.max_kept :]
        if record["latency_s"] is not None and self.on_latency is not None:
            self.on_latency(str(record["agent"]), record["latency_s"])
        if self.on_finished is not None:
            self.on_finished(record)
