"""Read a bluesky run back from the Tiled run store, as the documents a stream subscriber needs.

bluesky's `TiledWriter` (`controller.store.writer`) keeps a run as a container named by its start uid:
metadata `start` (and `stop` once the run ended); one child per stream whose metadata is the stream's
first descriptor (uid, time, data_keys, configuration, hints, object_classes); under that child, the
table `internal` (columns `seq_num`, `time`, every internal field, `ts_<field>`) and one array per
external field, registered on the detectors' own HDF5 files, with one block of rows per event
(event n is rows (n − 1)·k … n·k − 1 when an event holds k; k is the data key's first dimension, or 1
when the store stacked the events).

What cannot be read back: event uids, datum ids and the resource/datum documents themselves (Tiled keeps
the files and the layout, not the documents), and later descriptors of a stream (only their uid, time and
configuration). So `TiledRunReader` rebuilds the start, stop and one descriptor per stream exactly, and
events with their seq_num, time, data and timestamps; an event's uid is made from (run, stream,
seq_num) with uuid5, and each external field's array is read through Tiled (`StoredEvent.arrays`).
bluesky-tiled-plugins' `run.documents()` would replay documents too, but only from a server configured
with its exporter, which neither the embedded store nor an arbitrary Tiled server is.

A read that finds the run, stream or rows not (yet) there raises `NotStoredError`; one that cannot succeed
(an unreadable layout) raises `StoreError`. Transport errors pass through: the caller retries.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np

RESERVED_FIELDS = ("time", "seq_num")
"""Data keys TiledWriter renames with a leading underscore (they would clash with its own columns)."""
INTERNAL_TABLE = "internal"


class StoreError(RuntimeError):
    """The store holds the run but its data cannot be turned back into events."""


class NotStoredError(StoreError):
    """The run, stream or events asked for are not in the store (yet): worth asking again."""


@dataclass
class StoredEvent:
    """An event rebuilt from the store. `doc["data"]` lacks the external fields: their arrays are in
    `arrays` (data key → array, shaped as the data key says) and their files in `paths` (when the store
    names local files: the event's own if it lists one per event, else the first)."""

    doc: dict[str, Any]
    arrays: dict[str, np.ndarray] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)


def event_uid(run_uid: str, stream: str, seq_num: int) -> str:
    """The uid a rebuilt event gets: the same for the same event every time it is rebuilt."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"grainloop:{run_uid}/{stream}/{seq_num}"))


class TiledRunReader:
    """Runs read back from Tiled through `connect()` (a client of the API root; see `tiled_connector`).

    `reads` counts the requests it made, so that a caller (and a test) can tell when the store was asked.
    """

    def __init__(self, connect: Callable[[], Any]) -> None:
        self.connect = connect
        self._client: Any = None
        self.reads = 0

    def _run(self, run_uid: str) -> Any:
        if self._client is None:
            self._client = self.connect()
            self.reads += 1
        self.reads += 1
        try:
            return self._client[run_uid]
        except KeyError as exc:
            raise NotStoredError(f"run {run_uid} is not in the store") from exc
        except Exception:
            self._client = None  # reconnect next time: the server may have restarted
            raise

    def start(self, run_uid: str) -> dict[str, Any]:
        """The run's start document."""
        start = self._run(run_uid).metadata.get("start")
        if not start:
            raise NotStoredError(f"run {run_uid} has no start in the store")
        return dict(start)

    def stop(self, run_uid: str) -> dict[str, Any] | None:
        """The run's stop document, None while the store has none (the run goes on, or its stop was lost)."""
        stop = self._run(run_uid).metadata.get("stop")
        return dict(stop) if stop else None

    def descriptors(self, run_uid: str, streams: Iterable[str]) -> dict[str, dict[str, Any]]:
        """Stream name → its descriptor rebuilt from the store (the first); `NotStoredError` if one is not there."""
        run = self._run(run_uid)
        out = {}
        for stream in streams:
            self.reads += 1
            try:
                meta = dict(run[stream].metadata)
            except KeyError as exc:
                raise NotStoredError(f"run {run_uid} has no stream {stream!r} in the store yet") from exc
            out[stream] = _descriptor(run_uid, stream, meta)
        return out

    def events(
        self, run_uid: str, stream: str, descriptor: Mapping[str, Any], seq_nums: Iterable[int]
    ) -> list[StoredEvent]:
        """The events `seq_nums` of `stream`, in that order, pointing at `descriptor` (its uid and data keys)."""
        wanted = sorted(set(seq_nums))
        node = self._run(run_uid)
        self.reads += 2
        try:
            base = node[stream].base
            table = base[INTERNAL_TABLE].read()
        except KeyError as exc:
            raise NotStoredError(f"run {run_uid}: stream {stream!r} has no events in the store yet") from exc
        rows = {int(s): i for i, s in enumerate(table["seq_num"])}
        absent = [s for s in wanted if s not in rows]
        if absent:
            raise NotStoredError(f"run {run_uid}: events {_span(absent)} of {stream!r} are not in the store yet")
        data_keys: Mapping[str, Any] = descriptor.get("data_keys", {})
        stored_keys = node[stream].metadata.get("data_keys", {})
        external = [k for k, v in data_keys.items() if v.get("external")]
        nodes = {key: self._array_node(base, key, run_uid, stream) for key in external}
        files = {key: _asset_paths(array_node) for key, array_node in nodes.items()}
        out = []
        for seq_num in wanted:
            row = table.iloc[rows[seq_num]]
            columns = set(table.columns)
            data: dict[str, Any] = {}
            timestamps: dict[str, Any] = {}
            time_s = float(row["time"])
            for key in data_keys:
                if key in nodes:
                    continue
                column = f"_{key}" if key in RESERVED_FIELDS else key
                if column not in columns:
                    raise StoreError(f"run {run_uid}: stream {stream!r} has no column {column!r}")
                data[key] = _plain(row[column], bool(stored_keys.get(column, {}).get("json_encoded")))
                ts = f"ts_{column}"
                timestamps[key] = float(row[ts]) if ts in columns else time_s
            for key in nodes:
                timestamps[key] = time_s
            doc = {
                "uid": event_uid(run_uid, stream, seq_num),
                "descriptor": descriptor["uid"],
                "seq_num": seq_num,
                "time": time_s,
                "data": data,
                "timestamps": timestamps,
                "filled": {},
            }
            arrays = {
                key: self._block(array_node, seq_num, data_keys[key], f"{run_uid}/{stream}/{key}")
                for key, array_node in nodes.items()
            }
            paths = {key: _event_file(found, seq_num, len(table)) for key, found in files.items() if found}
            out.append(StoredEvent(doc, arrays, paths))
        return out

    def _array_node(self, base: Any, key: str, run_uid: str, stream: str) -> Any:
        self.reads += 1
        try:
            return base[key]
        except KeyError as exc:
            raise NotStoredError(f"run {run_uid}: the array {key!r} of {stream!r} is not in the store yet") from exc

    def _block(self, node: Any, seq_num: int, data_key: Mapping[str, Any], what: str) -> np.ndarray:
        """Event `seq_num`'s block of an external array, shaped as its data key says.

        TiledWriter concatenates each event's (k, …) block along the first axis, or stacks (…) blocks."""
        shape = tuple(int(n) for n in node.shape)
        declared = tuple(int(n) for n in data_key.get("shape") or ())
        if declared and shape[1:] == declared[1:]:
            per_event = declared[0]  # concatenated
        elif shape[1:] == declared:
            per_event = 0  # stacked: one row per event
        else:
            raise StoreError(f"{what}: stored as {shape}, which does not hold events of shape {declared}")
        if shape[0] < seq_num * max(per_event, 1):
            raise NotStoredError(f"{what}: event {seq_num} is not in the stored array {shape} yet")
        self.reads += 1
        if per_event:
            return np.asarray(node[(seq_num - 1) * per_event : seq_num * per_event])
        return np.asarray(node[seq_num - 1])


def _descriptor(run_uid: str, stream: str, meta: Mapping[str, Any]) -> dict[str, Any]:
    """A descriptor document from a stream's metadata (TiledWriter keeps all of it but name, object_keys
    and run_start; object keys come back from each data key's `object_name`)."""
    data_keys = {k: dict(v) for k, v in (meta.get("data_keys") or {}).items()}
    for name in RESERVED_FIELDS:
        if f"_{name}" in data_keys and name not in data_keys:
            data_keys[name] = data_keys.pop(f"_{name}")
    object_keys: dict[str, list[str]] = {}
    for key, value in data_keys.items():
        object_keys.setdefault(str(value.get("object_name", key)), []).append(key)
    doc = {k: v for k, v in meta.items() if not k.startswith("_")}
    doc.update({"run_start": run_uid, "name": stream, "data_keys": data_keys, "object_keys": object_keys})
    doc.setdefault("configuration", {})
    doc.setdefault("hints", {})
    return doc


def _asset_paths(node: Any) -> list[Path]:
    """The local paths of the files behind an external array, in the store's order (none if not files)."""
    try:
        sources = node.data_sources() or []
        assets = sorted(sources[0].assets, key=lambda a: a.num or 0) if sources else []
    except Exception:
        return []
    parsed = [urlparse(a.data_uri) for a in assets]
    return [Path(u.path) for u in parsed if u.scheme == "file" and u.path]


def _event_file(paths: list[Path], seq_num: int, n_events: int) -> Path:
    """The file of an event: its own when the store lists one per event, else the first."""
    return paths[seq_num - 1] if len(paths) == n_events else paths[0]


def _plain(value: Any, json_encoded: bool) -> Any:
    if json_encoded and isinstance(value, str):
        return json.loads(value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _span(seq_nums: list[int]) -> str:
    return str(seq_nums[0]) if len(seq_nums) == 1 else f"{seq_nums[0]}…{seq_nums[-1]} ({len(seq_nums)})"
