"""What every analysis agent on the document stream shares: asset lookup and publishing its own runs.

An analysis agent (segmentation, orientation) is a bluesky callback. It follows the source runs'
resource and datum documents (`AssetRegistry`) to read the arrays their events point to, and publishes
each result as a run of its own (`publish_analysis_run`):

- start: `parent_uid` = the source run's start uid, `agent`, `analysis`, `plan_name`, plus the source's
  `sample_id`, `campaign_id` and `step` when it has them, and `source_event_uid` / `source_seq_num`;
- one descriptor (stream "primary") and one event holding the result's flat data;
- stop: exit_status "success", or "fail" with the reason when the input could not be read or analysed.

A subscriber that raises is logged and skipped: one bad consumer never silences the others.

Documents the stream dropped can be put back by a gap filler (`controller.stream.gaps.GapFiller`), which
reads them from the run store. It asks `analyses(descriptor_uid)` which streams the agent needs, hands
over the arrays of a reconstructed event with `use_stored_arrays` (datum ids that resolve to arrays
already in memory, read through the store), and says with `note_unfilled` when it could not: then the
source run gets a failed analysis run naming the gap, unless the agent published a failure for that run
itself while handling its stop.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import h5py
import numpy as np
from event_model import compose_run, unpack_event_page

from devices.assets import HDF5_SPEC

log = logging.getLogger(__name__)

Callback = Callable[[str, dict[str, Any]], Any]
SOURCE_KEYS = ("sample_id", "campaign_id", "step")
"""Start-document keys copied from the source run to the analysis run."""
UNIT_SUFFIXES = (("_nm", "nm"), ("_um_inv", "1/um"), ("_um", "um"), ("_deg", "deg"), ("_s", "s"))
"""Result names ending in these get these units in their data keys (first match wins)."""


class AssetError(ValueError):
    """A datum id that cannot be followed to a readable array."""


@dataclass(frozen=True)
class AssetRef:
    """Where a datum's array lives: an HDF5 file, a dataset in it, and the datum's own kwargs."""

    path: Path
    dataset: str
    datum_kwargs: Mapping[str, Any]


@dataclass(frozen=True)
class StoredArray:
    """A datum's array already in memory (read back from the run store), with the kwargs its datum gets
    and the file it was read from, when the store names one (`path`, else empty)."""

    array: np.ndarray
    datum_kwargs: Mapping[str, Any]
    path: Path = Path()


class AssetRegistry:
    """The resource and datum documents seen so far, and the arrays they point to."""

    def __init__(self, lock_wait_s: float = 10.0) -> None:
        self.lock_wait_s = lock_wait_s
        """How long `read` waits for a file another process holds locked (HDF5 locks it while writing)."""
        self.resources: dict[str, dict[str, Any]] = {}
        self.datums: dict[str, dict[str, Any]] = {}
        self.stored: dict[str, StoredArray] = {}
        """Datum ids whose arrays are in memory (`use_stored`), looked up before the documents."""

    def add_resource(self, doc: dict[str, Any]) -> None:
        self.resources[doc["uid"]] = doc

    def add_datum(self, doc: dict[str, Any]) -> None:
        self.datums[doc["datum_id"]] = doc

    def use_stored(self, arrays: Mapping[str, StoredArray]) -> None:
        """Make `arrays` (datum id → array) the in-memory datums, replacing those given before."""
        self.stored = dict(arrays)

    def clear(self) -> None:
        self.resources.clear()
        self.datums.clear()
        self.stored.clear()

    def locate(self, datum_id: Any) -> AssetRef:
        """The file, dataset and kwargs behind `datum_id`; `AssetError` if they are unknown or not HDF5."""
        if not isinstance(datum_id, str):
            raise AssetError(f"expected a datum id, got {type(datum_id).__name__}")
        if (stored := self.stored.get(datum_id)) is not None:
            return AssetRef(stored.path, "", stored.datum_kwargs)
        datum = self.datums.get(datum_id)
        resource = self.resources.get(datum["resource"]) if datum else None
        if datum is None or resource is None:
            raise AssetError(f"datum {datum_id} (or its resource) never arrived")
        if resource.get("spec") != HDF5_SPEC:
            raise AssetError(f"resource spec {resource.get('spec')!r} is not {HDF5_SPEC!r}")
        path = Path(resource.get("root", "")) / resource["resource_path"]
        dataset = resource.get("resource_kwargs", {}).get("dataset", "")
        return AssetRef(path, dataset, datum.get("datum_kwargs", {}))

    def read(self, datum_id: Any) -> np.ndarray:
        """The array of a datum: the dataset, or one slice along axis 0 when the datum names a `frame`,
        `point_number` or scan `row`; an in-memory datum's array as it is."""
        if isinstance(datum_id, str) and (stored := self.stored.get(datum_id)) is not None:
            return stored.array
        ref = self.locate(datum_id)
        deadline = time.monotonic() + self.lock_wait_s
        pause_s = 0.02
        while True:
            try:
                return self._read(ref)
            except BlockingIOError as exc:  # the writer holds the file's lock while it appends a frame or row
                if time.monotonic() + pause_s > deadline:
                    raise AssetError(f"{ref.path}: still locked by its writer after {self.lock_wait_s:g} s") from exc
                time.sleep(pause_s)
                pause_s = min(pause_s * 2, 0.5)
            except Exception as exc:  # missing, truncated or foreign files
                raise AssetError(f"{ref.path}: cannot read {ref.dataset!r} ({type(exc).__name__}: {exc})") from exc

    @staticmethod
    def _read(ref: AssetRef) -> np.ndarray:
        with h5py.File(ref.path, "r") as fh:
            dataset = fh[ref.dataset]
            kwargs = ref.datum_kwargs
            frame = next((kwargs[k] for k in ("frame", "point_number", "row") if kwargs.get(k) is not None), None)
            if frame is not None and dataset.ndim >= 3:
                return np.asarray(dataset[int(frame)])
            return np.asarray(dataset)


def data_keys(data: Mapping[str, Any], source: str) -> dict[str, dict[str, Any]]:
    """Event-model data keys for a flat result dict; units from the name's suffix."""
    keys: dict[str, dict[str, Any]] = {}
    for name, value in data.items():
        if isinstance(value, str):
            keys[name] = {"source": source, "dtype": "string", "shape": []}
        elif isinstance(value, list):
            keys[name] = {"source": source, "dtype": "array", "shape": [len(value)]}
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            keys[name] = {"source": source, "dtype": "integer", "shape": []}
        else:
            keys[name] = {"source": source, "dtype": "number", "shape": []}
        for suffix, unit in UNIT_SUFFIXES:
            if name.endswith(suffix):
                keys[name]["units"] = unit
                break
    return keys


def publish_analysis_run(
    subscribers: list[Callback],
    parent_start: Mapping[str, Any],
    metadata: Mapping[str, Any],
    data: Mapping[str, Any] | None,
    reason: str = "",
    source_event: Mapping[str, Any] | None = None,
) -> None:
    """Send one analysis run (see the module docstring) to every subscriber; `data=None` makes it a failed run."""
    agent = str(metadata.get("agent", "analysis"))
    start: dict[str, Any] = {"parent_uid": parent_start["uid"], **metadata}
    for key in SOURCE_KEYS:
        if key in parent_start:
            start[key] = parent_start[key]
    if source_event is not None:
        start["source_event_uid"] = source_event["uid"]
        start["source_seq_num"] = source_event.get("seq_num")
    bundle = compose_run(metadata=start)
    docs: list[tuple[str, dict[str, Any]]] = [("start", dict(bundle.start_doc))]
    if data is not None:
        descriptor = bundle.compose_descriptor(name="primary", data_keys=data_keys(data, agent))
        now = time.time()
        event = descriptor.compose_event(data=dict(data), timestamps={k: now for k in data}, seq_num=1)
        docs += [("descriptor", dict(descriptor.descriptor_doc)), ("event", dict(event))]
        docs.append(("stop", dict(bundle.compose_stop(exit_status="success"))))
    else:
        docs.append(("stop", dict(bundle.compose_stop(exit_status="fail", reason=reason))))
    for name, doc in docs:
        for callback in list(subscribers):
            try:
                callback(name, doc)
            except Exception:
                log.exception("%s agent: subscriber %r failed on %s", agent, callback, name)


class StreamAnalysisAgent(ABC):
    """The document-stream side every analysis agent shares: dispatch, assets, run bookkeeping, publishing.

    A subclass keeps one record per source run in `_runs` (start uid → its own run type), maps the
    descriptors it analyses to their run in `_descriptor_run`, and implements `_start`, `_descriptor`,
    `_event` and `_stop`; `_end_run` and `_emit` do the rest.
    """

    agent_name: ClassVar[str]
    MAX_KEPT_REPORTS: ClassVar[int] = 100

    def __init__(self, subscribers: list[Callback] | None = None) -> None:
        self.subscribers: list[Callback] = list(subscribers or [])
        self.reports: list[Any] = []
        """Reports of the runs this agent published, oldest first (the last `MAX_KEPT_REPORTS`)."""
        self.failures: list[str] = []
        self._runs: dict[str, Any] = {}
        self._descriptor_run: dict[str, str] = {}
        self._assets = AssetRegistry()
        self._unfilled: dict[str, tuple[Mapping[str, Any], str]] = {}  # run uid → (its start, the gap's reason)
        self._gaps: dict[str, dict[str, Any]] = {}  # source run uid → `stream_gap` of its analysis runs
        self._failed_runs_published = 0
        self._metadata: Mapping[str, Any] = {"plan_name": f"{self.agent_name}_analysis"}
        """Metadata of the last run published, reused for a gap's failed run."""

    def subscribe(self, callback: Callback) -> None:
        """Send the agent's own runs to `callback(name, doc)`."""
        self.subscribers.append(callback)

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        try:
            if name == "event_page":
                for event in unpack_event_page(doc):
                    self._event(event)
            elif name == "stop":
                self._stop_and_report_gap(doc)
            elif name in ("start", "descriptor", "resource", "datum", "event"):
                getattr(self, f"_{name}")(doc)
        except Exception:  # a callback must never take down the RunEngine or the dispatcher
            log.exception("%s agent: could not handle a %s document", self.agent_name, name)

    # -- what a gap filler (controller.stream.gaps) uses -----------------------------------------------

    def analyses(self, descriptor_uid: str) -> bool:
        """Whether this agent analyses the events of that descriptor (one it was given, of a run in progress)."""
        return descriptor_uid in self._descriptor_run

    def use_stored_arrays(self, arrays: Mapping[str, StoredArray]) -> None:
        """Datum ids the next events name whose arrays are already in memory (replaces those given before)."""
        self._assets.use_stored(arrays)

    def note_unfilled(self, start: Mapping[str, Any], reason: str) -> None:
        """Documents of run `start` that this agent needs are lost: at its stop, publish a failed analysis
        run with `reason`, unless the agent itself publishes a failure for the run then."""
        self._unfilled[str(start["uid"])] = (dict(start), reason)

    def note_gap(self, run_uid: str, outcome: str, events_filled: int) -> None:
        """The stream dropped documents of source run `run_uid` that this agent needs, and the store filled
        them (`outcome` "filled") or not ("failed"): its analysis runs say so in their start (`stream_gap`)."""
        self._gaps[run_uid] = {"outcome": outcome, "events_filled": int(events_filled)}

    def _stop_and_report_gap(self, doc: dict[str, Any]) -> None:
        gap = self._unfilled.pop(doc.get("run_start", ""), None)
        failed_before = self._failed_runs_published
        try:
            self._stop(doc)
        finally:
            if gap is not None and self._failed_runs_published == failed_before:
                start, reason = gap
                metadata = {k: v for k, v in self._metadata.items() if k != "images"}
                self._emit(start, metadata, None, reason, None)
            self._gaps.pop(doc.get("run_start", ""), None)

    @abstractmethod
    def _start(self, doc: dict[str, Any]) -> None: ...

    @abstractmethod
    def _descriptor(self, doc: dict[str, Any]) -> None: ...

    @abstractmethod
    def _event(self, doc: dict[str, Any]) -> None: ...

    @abstractmethod
    def _stop(self, doc: dict[str, Any]) -> None: ...

    def _resource(self, doc: dict[str, Any]) -> None:
        self._assets.add_resource(doc)

    def _datum(self, doc: dict[str, Any]) -> None:
        self._assets.add_datum(doc)

    def _end_run(self, run_uid: str) -> Any:
        """Forget a source run and its descriptors (the asset documents too once none is in flight)."""
        run = self._runs.pop(run_uid, None)
        for descriptor_uid in [d for d, r in self._descriptor_run.items() if r == run_uid]:
            del self._descriptor_run[descriptor_uid]
        if not self._runs:
            self._assets.clear()
        return run

    def _figures(self, report: Any | None) -> dict[str, str] | None:
        """Figures drawn for the run about to be published (name → path), put in its start as `images`.

        None (the default): the agent draws none and the start has no `images`."""
        return None

    def _emit(
        self,
        parent_start: Mapping[str, Any],
        metadata: Mapping[str, Any],
        report: Any | None,
        reason: str,
        source_event: Mapping[str, Any] | None,
    ) -> None:
        """Publish one analysis run (a failed one when `report` is None) and keep the report or reason."""
        data = report.event_data() if report is not None else None
        self._metadata = dict(metadata)
        if report is None:
            self._failed_runs_published += 1
        images = self._figures(report)
        if images is not None:
            metadata = {**metadata, "images": images}
        gap = self._gaps.get(str(parent_start.get("uid", "")))
        if gap is not None:
            metadata = {**metadata, "stream_gap": gap}
        publish_analysis_run(
            self.subscribers,
            parent_start,
            {"agent": self.agent_name, **metadata},
            data,
            reason,
            source_event=source_event,
        )
        if report is not None:
            self.reports = [*self.reports, report][-self.MAX_KEPT_REPORTS :]
        else:
            self.failures = [*self.failures, reason][-self.MAX_KEPT_REPORTS :]
