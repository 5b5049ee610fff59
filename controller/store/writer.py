"""Write every run to the run store without ever failing or stalling a plan because of the store.

`RunStoreWriter` is a RunEngine callback around bluesky's `TiledWriter`. When a run's store write fails
(server down, refused, a document it cannot take), that run's documents so far and all that follow go
to `backup_dir/<start uid>.jsonl` (one JSON document per line, numpy values as plain numbers), so nothing
is lost; other runs keep trying the store. Exceptions never reach the RunEngine: they are logged and
counted (`failures`).

A store that cannot be reached is not asked again for `retry_after_s`: meanwhile new runs go straight
to the backup, so a dead server costs a plan one bounded wait (tiled's client retries a request
`TILED_RETRY_ATTEMPTS` times within `TILED_RETRY_TIMEOUT` seconds; the worker sets them low), not one
per document. A run's documents are kept in memory until its stop (to replay them into its backup).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
from bluesky.callbacks.tiled_writer import TiledWriter

from controller.rundir import jsonable

log = logging.getLogger("grainloop.store")
Connect = Callable[[], Any]


def tiled_connector(uri: str, api_key: str | None) -> Connect:
    """A function returning a Tiled client for `uri` (raises if the server does not answer)."""

    def connect() -> Any:
        from tiled.client import from_uri

        return from_uri(uri, api_key=api_key)

    return connect


class RunStoreWriter:
    """`RE.subscribe(RunStoreWriter(tiled_connector(uri, key), backup_dir))`."""

    def __init__(self, connect: Connect, backup_dir: Path, batch_size: int = 1, retry_after_s: float = 60.0) -> None:
        self.connect, self.backup_dir, self.batch_size = connect, backup_dir, batch_size
        self.retry_after_s = retry_after_s
        self._down_until = 0.0  # monotonic time before which the store is not asked
        self._tiled: TiledWriter | None = None
        self._docs: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # run uid → documents not yet confirmed
        self._backup: dict[str, Path] = {}  # run uid → its backup file, once its store write failed
        self._parents: dict[str, str] = {}  # descriptor / resource uid → run uid
        self._json_fields: dict[str, tuple[str, ...]] = {}  # descriptor uid → its fields stored as JSON text
        self.runs_stored = 0
        self.runs_backed_up = 0
        self.failures = 0

    def _run_of(self, name: str, doc: dict[str, Any]) -> str | None:
        """The start uid a document belongs to (events via their descriptor, datums via their resource)."""
        if name == "start":
            return doc["uid"]
        if run_uid := doc.get("run_start"):  # stop, descriptor, resource, stream_resource
            if name in ("descriptor", "resource", "stream_resource"):
                self._parents[doc["uid"]] = run_uid
            return run_uid
        parent = doc.get("descriptor") or doc.get("resource") or doc.get("stream_resource")
        return self._parents.get(parent) if isinstance(parent, str) else None

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        run_uid = self._run_of(name, doc)
        if run_uid is None:
            log.warning("run store writer: a %s document of no run it has seen; not stored", name)
            return
        if name == "start":
            self._docs[run_uid] = []
            if time.monotonic() < self._down_until:
                self._backup[run_uid] = self.backup_dir / f"{run_uid}.jsonl"
        if run_uid not in self._backup:
            self._docs.setdefault(run_uid, []).append((name, doc))
            try:
                writer = self._writer()
                writer(name, self._table_safe(name, doc))
            except Exception as exc:  # the store failed this run: it goes to the backup from its start on
                self.failures += 1
                if isinstance(exc, httpx.TransportError):  # unreachable, not a refused document
                    self._down_until = time.monotonic() + self.retry_after_s
                self._backup[run_uid] = self.backup_dir / f"{run_uid}.jsonl"
                log.error("run store write failed (%s: %s); run %s goes to %s", type(exc).__name__, exc, run_uid,
                          self._backup[run_uid])  # fmt: skip
                for pending in self._docs.pop(run_uid, []):
                    self._append(run_uid, *pending)
        else:
            self._append(run_uid, name, doc)
        if name == "stop":
            self._docs.pop(run_uid, None)
            gone = {k for k, v in self._parents.items() if v == run_uid}
            self._parents = {k: v for k, v in self._parents.items() if k not in gone}
            self._json_fields = {k: v for k, v in self._json_fields.items() if k not in gone}
            if self._backup.pop(run_uid, None) is not None:
                self.runs_backed_up += 1
            else:
                self.runs_stored += 1

    def _table_safe(self, name: str, doc: dict[str, Any]) -> dict[str, Any]:
        """The document as Tiled's SQL tables can hold it: a one-dimensional array field that is not an
        external asset (an analysis run's histogram, say) is stored as JSON text; its data key then says
        `dtype: string` and `json_encoded: true`. The stream and the backup keep the original; images
        belong in assets, and an event carrying one still sends its run to the backup."""
        if name == "descriptor":
            fields = tuple(k for k, v in doc.get("data_keys", {}).items() if _short_internal_array(v))
            if not fields:
                return doc
            self._json_fields[doc["uid"]] = fields
            keys = {k: ({**v, "dtype": "string", "shape": [], "json_encoded": True} if k in fields else v)
                    for k, v in doc["data_keys"].items()}  # fmt: skip
            return {**doc, "data_keys": keys}
        fields = self._json_fields.get(doc.get("descriptor", "")) if name in ("event", "event_page") else None
        if not fields:
            return doc
        data = dict(doc["data"])
        for key in fields:
            if key in data:
                encode = partial(json.dumps, default=jsonable)
                data[key] = [encode(v) for v in data[key]] if name == "event_page" else encode(data[key])
        return {**doc, "data": data}

    def _writer(self) -> TiledWriter:
        if self._tiled is None:
            self._tiled = TiledWriter(self.connect(), batch_size=self.batch_size)
        return self._tiled

    def _append(self, run_uid: str, name: str, doc: dict[str, Any]) -> None:
        try:
            self.backup_dir.mkdir(parents=True, exist_ok=True)
            with open(self._backup[run_uid], "a") as fh:
                fh.write(json.dumps({"name": name, "doc": doc}, default=jsonable) + "\n")
        except Exception as exc:  # the disk failed too: say so loudly, never raise into the plan
            self.failures += 1
            log.exception("run backup write failed for run %s: %s", run_uid, exc)


def _short_internal_array(data_key: dict[str, Any]) -> bool:
    return data_key.get("dtype") == "array" and not data_key.get("external") and len(data_key.get("shape") or []) == 1
