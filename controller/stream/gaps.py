"""Put back what the document stream dropped, from the run store, so that no analysis is silently lost.

0MQ PUB/SUB drops messages when a subscriber falls behind (the proxy's queue for it is full) and gives a
subscriber that joins late nothing of what came before. `GapFiller` sits between a `RemoteDispatcher`
and a consumer (an analysis agent) and keeps, per run, what reached the consumer: the start, one
descriptor per stream, the seq_nums of the events, and the resource and datum documents the events name.

- **A run's documents without its start** (a descriptor or resource naming it, or its stop): the start is
  read from the store and handed over first. Events whose descriptor never arrived cannot be placed in a
  run until its stop names it: they are held back, and come from the store then.
- **An event after a gap** (its seq_num jumps over events of its stream): the events in between are read
  from the store and handed over first, in order. **An event whose datum or resource was dropped** is
  replaced by its copy from the store.
- **At the stop**: every stream's `num_events` is compared with what was handed over; a stream whose
  descriptor never arrived gets it from the store, and its missing events follow, in seq_num order,
  before the stop. **A dropped stop** is taken from the store by `poll` (call it every few seconds) once
  the stream shows it was dropped: a later source run began, or nothing came for `quiet_s`.

Only the streams the consumer analyses are filled (`consumer.analyses(descriptor_uid)`, if it has it; else
all). When nothing was missing, nothing is read from the store (`poll` may look up the stop of a run that
stays open through a silence of `quiet_s`). Every event reaches the consumer once: what
arrived is never replaced (an event the RunEngine sends again under the same seq_num, re-taking a point
after a pause, is passed on as it comes, as without a filler).

What comes back from the store is what `controller.stream.store_reader` can rebuild: the start, stop
and descriptors as written, and events with their data, but new event uids (uuid5 of run, stream and
seq_num) and no resource/datum documents. Their external fields are datum ids
(`<run uid>/store/<stream>/<field>/<seq_num>`) whose arrays, read through Tiled, the consumer gets with
`consumer.use_stored_arrays` (an `agents.analysis_stream.StoredArray` with `datum_kwargs={"row":
seq_num − 1}`: the event's block in its stream, as the store lays it out); a consumer without that
method gets them filled in (`data[field]` = the array, `filled[field]` = True).

The store may lag the stream a moment: a read that finds the documents not there yet (or no server) is
retried until `timeout_s`; an error the store answers with is not. A fill that fails before the stop is
tried again at the stop; one that fails there is logged, counted (`on_outcome("failed", …)`) and, for a
consumer with `note_unfilled`, reported to it (an analysis agent then publishes a failed analysis run
naming the gap); the stop is handed over all the same. A consumer with `note_gap(run_uid, outcome,
events_filled)` hears of every fill before it gets the documents, and of the run's outcome at its stop.
Nothing raises out of `__call__`. Reads run on the dispatcher's thread, so the consumer waits for them:
documents arriving meanwhile queue in 0MQ.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from event_model import unpack_datum_page, unpack_event_page

from agents.analysis_stream import StoredArray
from controller.stream.store_reader import NotStoredError, StoredEvent, TiledRunReader

log = logging.getLogger("grainloop.stream")
T = TypeVar("T")
OUTCOMES = ("filled", "failed")
"""`on_outcome` labels: a run's gaps all filled, or some of them not."""
RETRYABLE = (NotStoredError, httpx.TransportError, OSError)
"""Worth asking again until `timeout_s`: not there yet, or no answer. An error the store answered with is not."""
FILL_BATCH = 8
"""Events read from the store at a time (bounds the arrays held in memory: 8 SPED rows, say)."""
MAX_RUNS = 256
"""Runs followed at once; the least recently active is forgotten beyond this."""
MAX_ENDED = 4096
"""Ended (or forgotten) runs remembered, so that a late document of one is never taken for a new run."""


@dataclass
class _Stream:
    name: str
    descriptor: dict[str, Any] | None = None
    described: bool = False  # the consumer has the descriptor
    wanted: bool = False
    delivered: set[int] = field(default_factory=set)
    deferred: set[int] = field(default_factory=set)  # a fill failed before the stop: tried again there
    contiguous: int = 0  # every seq_num up to this one was handed over

    def mark(self, seq_num: int) -> None:
        self.delivered.add(seq_num)
        self.deferred.discard(seq_num)
        while self.contiguous + 1 in self.delivered:
            self.contiguous += 1

    def missing(self, through: int, *, deferred: bool = False) -> list[int]:
        """Seq_nums up to `through` not handed over (without those deferred to the stop, unless `deferred`)."""
        skip = self.delivered if deferred else self.delivered | self.deferred
        return [s for s in range(self.contiguous + 1, through + 1) if s not in skip]


@dataclass
class _Run:
    uid: str
    start: dict[str, Any] | None = None
    streams: dict[str, _Stream] = field(default_factory=dict)
    active_at: float = field(default_factory=time.monotonic)
    checked_at: float = 0.0
    recovered: int = 0  # start and descriptors read from the store
    filled: int = 0  # events read from the store
    start_error: str = ""  # why the start could not be read, while it could not
    failures: list[str] = field(default_factory=list)
    unfilled: list[str] = field(default_factory=list)  # … of them about streams the consumer analyses


class GapFiller:
    """`dispatcher.subscribe(GapFiller(agent, TiledRunReader(connect)))`; `poll()` every few seconds."""

    def __init__(
        self,
        consumer: Callable[[str, dict[str, Any]], Any],
        store: TiledRunReader | None,
        *,
        timeout_s: float = 10.0,
        quiet_s: float = 60.0,
        on_outcome: Callable[[str, str, int], None] | None = None,
    ) -> None:
        """`store` None: gaps are only detected and reported. `quiet_s`: see `poll`.
        `on_outcome(outcome, run_uid, n_events)` is called once per run with a gap that concerned the
        consumer, when the run ends."""
        self.consumer, self.store, self.timeout_s, self.quiet_s = consumer, store, timeout_s, quiet_s
        self.on_outcome = on_outcome
        self.stats: dict[str, int] = dict.fromkeys(
            ("filled", "failed", "events_filled", "starts_read", "descriptors_read", "held_back", "retaken"), 0
        )
        self._runs: dict[str, _Run] = {}
        self._descriptors: dict[str, tuple[str, str]] = {}  # descriptor uid → (run uid, stream)
        self._resources: dict[str, str] = {}  # resource uid → run uid ("" if it names none)
        self._datums: dict[str, str] = {}  # datum id → resource uid
        self._ended: dict[str, bool] = {}  # run uid → stopped (True) or forgotten (False), oldest first
        self._handled_at = time.monotonic()  # when the last document was handled (after the consumer had it)
        self._source_start: tuple[float, float, str] | None = None  # latest source start: handled at, time, uid

    # -- the stream --------------------------------------------------------------------------------
    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        try:
            if name == "event_page":
                for event in unpack_event_page(doc):
                    self._event(event)
            elif name == "datum_page":
                for datum in unpack_datum_page(doc):
                    self._datum(datum)
            elif name in ("start", "descriptor", "resource", "datum", "event", "stop"):
                getattr(self, f"_{name}")(doc)
            else:
                self._deliver(name, doc)
        except Exception:  # a bug here must not cost the consumer its documents: hand over and go on
            log.exception("gap filler: could not follow a %s document; handed over as it came", name)
            self._deliver(name, doc)
        finally:
            self._handled_at = time.monotonic()

    def _start(self, doc: dict[str, Any]) -> None:
        if not doc.get("parent_uid") and isinstance(doc.get("time"), int | float):
            self._source_start = (time.monotonic(), float(doc["time"]), doc["uid"])
        self._track(_Run(doc["uid"], start=doc))
        self._deliver("start", doc)

    def _descriptor(self, doc: dict[str, Any]) -> None:
        if doc["run_start"] in self._ended:
            self._deliver("descriptor", doc)
            return
        run, _ = self._run_of(doc["run_start"])
        name = str(doc.get("name", "primary"))
        stream = run.streams.setdefault(name, _Stream(name))
        self._descriptors[doc["uid"]] = (run.uid, name)
        first = stream.descriptor is None
        stream.descriptor = stream.descriptor or doc
        if run.start is None:  # the consumer could not place it: handed over once there is a start
            return
        self._deliver("descriptor", doc)
        if first:
            stream.described, stream.wanted = True, self._wants(doc["uid"])

    def _resource(self, doc: dict[str, Any]) -> None:
        run_uid = doc.get("run_start") or ""
        if run_uid and run_uid not in self._ended:
            self._run_of(run_uid)
        self._resources[doc["uid"]] = run_uid
        _bound(self._resources)
        self._deliver("resource", doc)

    def _datum(self, doc: dict[str, Any]) -> None:
        self._datums[doc["datum_id"]] = doc["resource"]
        _bound(self._datums)
        self._deliver("datum", doc)

    def _event(self, doc: dict[str, Any]) -> None:
        where = self._descriptors.get(doc.get("descriptor", ""))
        run = self._runs.get(where[0]) if where else None
        if where is None or run is None or run.start is None:
            self.stats["held_back"] += 1  # its run is not known yet: the store gives it at the stop
            return
        run.active_at = time.monotonic()
        stream = run.streams[where[1]]
        if not stream.wanted:
            self._deliver("event", doc)
            return
        seq_num = int(doc["seq_num"])
        if seq_num in stream.delivered:  # sent again: the RunEngine re-takes a point after a pause
            self.stats["retaken"] += 1
        earlier = stream.missing(seq_num - 1)
        if self._assets_arrived(doc, stream):
            self._fill(run, stream, earlier, "before one that arrived", final=False)
            self._deliver("event", doc)
            stream.mark(seq_num)
        else:  # its datum or resource was dropped: the store's copy replaces it
            self._fill(run, stream, [*earlier, seq_num], "one whose datum or resource was dropped", final=False)

    def _stop(self, doc: dict[str, Any], source: str = "stream") -> None:
        if (stopped := self._ended.get(doc["run_start"])) is not None:
            if stopped:  # e.g. the stream's stop after `poll` handed over the store's
                log.info("run %s: a second stop, not handed over", doc["run_start"])
            else:
                self._deliver("stop", doc)
            return
        run, new = self._run_of(doc["run_start"])
        try:
            if run.start is None and not new:
                self._recover_start(run)
            if run.start is None:
                run.failures.append(run.start_error)
            else:
                for stream_name, n_events in sorted((doc.get("num_events") or {}).items()):
                    self._complete(run, stream_name, int(n_events))
            self._conclude(run)
        except Exception:
            log.exception("gap filler: run %s could not be completed", run.uid)
        finally:
            if source != "stream":
                log.warning("run %s: its stop never arrived; handed over the store's", run.uid)
            self._deliver("stop", doc)
            self._forget(run.uid, stopped=True)

    # -- filling -----------------------------------------------------------------------------------
    def _complete(self, run: _Run, stream_name: str, n_events: int) -> None:
        """Hand over what the consumer still lacks of a stream whose stop says it had `n_events`."""
        if n_events <= 0:
            return
        stream = run.streams.setdefault(stream_name, _Stream(stream_name))
        if not stream.described:  # its descriptor was dropped: the store's
            what = f"run {run.uid}: the descriptor of {stream_name!r}"
            descriptor = self._read(lambda: self._store().descriptors(run.uid, [stream_name])[stream_name], what)
            if isinstance(descriptor, str):
                run.failures.append(descriptor)
                return
            self.stats["descriptors_read"] += 1
            run.recovered += 1
            stream.descriptor = descriptor
            self._descriptors[descriptor["uid"]] = (run.uid, stream_name)
            self._deliver("descriptor", descriptor)
            stream.described, stream.wanted = True, self._wants(descriptor["uid"])
        if stream.wanted:
            self._fill(run, stream, stream.missing(n_events, deferred=True), "at the run's stop", final=True)

    def _fill(self, run: _Run, stream: _Stream, seq_nums: list[int], when: str, *, final: bool) -> None:
        """Hand over events `seq_nums` of `stream` from the store, in order, `FILL_BATCH` read at a time. A
        failure before the stop defers the rest to the stop; at the stop it is the run's."""
        if not seq_nums or stream.descriptor is None:
            return
        descriptor = stream.descriptor
        what = f"run {run.uid}: event(s) {_span(seq_nums)} of {stream.name!r} ({when})"
        for i in range(0, len(seq_nums), FILL_BATCH):
            batch = seq_nums[i : i + FILL_BATCH]
            events = self._read(lambda b=batch: self._store().events(run.uid, stream.name, descriptor, b), what)
            if isinstance(events, str):
                if final:
                    run.failures.append(events)
                    run.unfilled.append(events)
                else:
                    stream.deferred.update(seq_nums[i:])
                    log.warning("%s; tried again at the run's stop", events)
                return
            self._note(run, "filled", run.filled + len(events))
            for event in events:
                self._deliver_stored(run, stream, event)
                stream.mark(int(event.doc["seq_num"]))
            run.filled += len(events)
            self.stats["events_filled"] += len(events)
        log.info("%s: filled from the run store", what)

    def _deliver_stored(self, run: _Run, stream: _Stream, event: StoredEvent) -> None:
        doc, seq_num = event.doc, int(event.doc["seq_num"])
        use_stored = getattr(self.consumer, "use_stored_arrays", None)
        stored: dict[str, StoredArray] = {}
        for key, array in event.arrays.items():
            if use_stored is None:
                doc["data"][key] = array
                doc["filled"][key] = True
                continue
            datum_id = f"{run.uid}/store/{stream.name}/{key}/{seq_num}"
            stored[datum_id] = StoredArray(array, {"row": seq_num - 1}, event.paths.get(key, Path()))
            doc["data"][key] = datum_id
        if use_stored is not None:
            use_stored(stored)
        try:
            self._deliver("event", doc)
        finally:
            if use_stored is not None:
                use_stored({})  # the arrays are the consumer's only while it handles this event

    def _recover_start(self, run: _Run) -> None:
        start = self._read(lambda: self._store().start(run.uid), f"run {run.uid}: its start")
        if isinstance(start, str):
            run.start_error = start
            log.warning("%s; the run's documents are held back until its stop", start)
            return
        self.stats["starts_read"] += 1
        run.recovered += 1
        run.start = start
        log.info("run %s: its start was dropped; handed over the store's", run.uid)
        self._note(run, "filled", run.filled)
        self._deliver("start", start)
        for stream in run.streams.values():  # descriptors that arrived meanwhile: now the consumer can place them
            if stream.descriptor is not None and not stream.described:
                self._deliver("descriptor", stream.descriptor)
                stream.described, stream.wanted = True, self._wants(stream.descriptor["uid"])

    def _read(self, read: Callable[[], T], what: str) -> T | str:
        """`read()`, again while the store does not have it yet (or does not answer), until `timeout_s`;
        the reason as a string when it never succeeds."""
        if self.store is None:
            return f"{what}: no run store to read it from"
        deadline = time.monotonic() + self.timeout_s
        pause_s = 0.05
        while True:
            try:
                return read()
            except RETRYABLE as exc:
                error: Exception = exc
            except Exception as exc:  # the store answered, or holds what cannot be read: asking again won't help
                error = exc
                break
            if time.monotonic() + pause_s > deadline:
                break
            time.sleep(pause_s)
            pause_s = min(pause_s * 2, 1.0)
        return f"{what}: {type(error).__name__}: {error}"

    def _note(self, run: _Run, outcome: str, events_filled: int) -> None:
        """Tell a consumer with `note_gap` that documents of `run` came from the store (before it gets them,
        so that an analysis it finishes mid-run says so) or, at the end, how the run's gaps ended."""
        note = getattr(self.consumer, "note_gap", None)
        if note is not None:
            note(run.uid, outcome, events_filled)

    def _store(self) -> TiledRunReader:
        assert self.store is not None
        return self.store

    def _conclude(self, run: _Run) -> None:
        """Count and log the run's outcome; tell the consumer what it will not get."""
        wanted = any(s.wanted for s in run.streams.values())
        if not run.failures and not run.filled and not (run.recovered and wanted):
            return  # nothing was missing, or nothing the consumer analyses
        outcome = "failed" if run.failures else "filled"
        self.stats[outcome] += 1
        self._note(run, outcome, run.filled)
        if self.on_outcome is not None:
            self.on_outcome(outcome, run.uid, run.filled)
        if not run.failures:
            log.info("run %s: %d event(s) and %d other document(s) filled from the run store",
                     run.uid, run.filled, run.recovered)  # fmt: skip
            return
        log.error("run %s: dropped by the document stream and not read from the run store: %s", run.uid,
                  "; ".join(run.failures))  # fmt: skip
        note = getattr(self.consumer, "note_unfilled", None)
        if note is not None and run.start is not None and run.unfilled:
            note(run.start, "dropped by the document stream, not in the run store: " + "; ".join(run.unfilled))

    # -- bookkeeping -------------------------------------------------------------------------------
    def poll(self) -> None:
        """Hand over the store's stop of open runs whose stop the stream dropped (call it every few seconds).

        A stop the store has may still be on its way (the subscriber is behind), so an open run is looked
        up only when a source run (a start without `parent_uid`, as the worker's) that began after the
        run's last document has been handled — one publisher's documents arrive in order, so a stop older
        than that start was dropped — or when the stream has been quiet for `quiet_s` since the last
        document was handled (the run's last documents and its stop were dropped, and nothing followed).
        Each open run is looked up at most once per `quiet_s`: a stream that loses nothing costs nothing
        but that look-up for a run that stays open through a silence (a long acquisition, a pause)."""
        if self.store is None:
            return
        now = time.monotonic()
        quiet = now - self._handled_at >= self.quiet_s
        source = self._source_start
        for run in list(self._runs.values()):
            later = source is not None and source[2] != run.uid and source[0] > run.active_at
            if not (quiet or later) or now - run.checked_at < self.quiet_s:
                continue
            run.checked_at = now
            try:
                stop = self.store.stop(run.uid)
            except Exception as exc:  # the store is down or lags: ask again later
                log.debug("run %s: could not ask the store for its stop (%s)", run.uid, exc)
                continue
            if stop is None:
                continue
            ended_before = source is not None and float(stop.get("time") or math.inf) <= source[1]
            if quiet or (later and ended_before):
                self._stop(stop, source="store")

    def _run_of(self, run_uid: str) -> tuple[_Run, bool]:
        """The run and whether it is new here: a run first met after its start had the start dropped,
        which is read from the store and handed over first."""
        run = self._runs.get(run_uid)
        if run is not None:
            run.active_at = time.monotonic()
            return run, False
        run = self._track(_Run(run_uid))
        self._recover_start(run)
        return run, True

    def _track(self, run: _Run) -> _Run:
        self._runs[run.uid] = run
        if len(self._runs) > MAX_RUNS:
            oldest = min(self._runs.values(), key=lambda r: r.active_at)
            log.warning("run %s: forgotten without its stop (more than %d runs open)", oldest.uid, MAX_RUNS)
            self._forget(oldest.uid, stopped=False)
        return run

    def _forget(self, run_uid: str, *, stopped: bool) -> None:
        self._runs.pop(run_uid, None)
        self._ended[run_uid] = stopped
        while len(self._ended) > MAX_ENDED:
            del self._ended[next(iter(self._ended))]
        self._descriptors = {k: v for k, v in self._descriptors.items() if v[0] != run_uid}
        resources = {k for k, v in self._resources.items() if v == run_uid}
        self._resources = {k: v for k, v in self._resources.items() if k not in resources}
        self._datums = {k: v for k, v in self._datums.items() if v not in resources}

    def _assets_arrived(self, event: dict[str, Any], stream: _Stream) -> bool:
        """Whether every datum an event names, and its resource, reached the consumer."""
        assert stream.descriptor is not None
        filled = event.get("filled") or {}
        for key, value in event.get("data", {}).items():
            if not stream.descriptor["data_keys"].get(key, {}).get("external") or filled.get(key):
                continue
            resource = self._datums.get(value) if isinstance(value, str) else None
            if resource is None or resource not in self._resources:
                return False
        return True

    def _wants(self, descriptor_uid: str) -> bool:
        analyses = getattr(self.consumer, "analyses", None)
        try:
            return True if analyses is None else bool(analyses(descriptor_uid))
        except Exception:  # when in doubt, fill
            log.exception("gap filler: the consumer could not say whether it analyses %s", descriptor_uid)
            return True

    def _deliver(self, name: str, doc: dict[str, Any]) -> None:
        try:
            self.consumer(name, doc)
        except Exception:
            log.exception("gap filler: the consumer failed on a %s document", name)


def _bound(mapping: dict[str, str], limit: int = 100_000) -> None:
    """Forget the oldest entries beyond `limit` (those of runs whose stop never came)."""
    while len(mapping) > limit:
        del mapping[next(iter(mapping))]


def _span(seq_nums: list[int]) -> str:
    return str(seq_nums[0]) if len(seq_nums) == 1 else f"{seq_nums[0]}…{seq_nums[-1]}"
