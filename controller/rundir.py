"""Write every document of every run to a run directory as JSON Lines, one file per run.

Layout: `<root>/<sample_id>/<stage>-<start uid[:8]>.jsonl`, arrays in `<root>/data/*.h5` (written by
the detectors, referenced by resource/datum documents). Resource and datum documents arrive inside
the run that uses them and are written to its file. Runs may be open at the same time (a pipelined
batch): each document goes to its own run's file, found through its start, descriptor or resource.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


def jsonable(obj: Any) -> Any:
    """`json.dumps(default=…)` for numpy scalars and arrays."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _clean(value: Any) -> Any:
    """NaN/inf (a broken thermocouple) become null: strict JSON for any reader."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


class RunDirectoryWriter:
    """A RunEngine subscriber: `RE.subscribe(RunDirectoryWriter(root))`.

    Monitor events are dispatched from the device's own thread while the RunEngine's thread emits the
    rest, so every write holds a lock: an unguarded text file interleaved and duplicated lines.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.files: list[Path] = []
        self._open: dict[str, IO[str]] = {}  # start uid -> file of a run not yet stopped
        self._parents: dict[str, str] = {}  # descriptor or resource uid -> start uid
        self._lock = threading.Lock()

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        with self._lock:
            self._write(name, doc)

    def _write(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            path = (
                self.root
                / str(doc.get("sample_id", "unassigned"))
                / f"{doc.get('stage', 'run')}-{doc['uid'][:8]}.jsonl"
            )
            path.parent.mkdir(parents=True, exist_ok=True)
            self._open[doc["uid"]] = path.open("w")
            self.files.append(path)
        run = self._run_of(name, doc)
        if run is None:
            return
        if name in ("descriptor", "resource", "stream_resource"):
            self._parents[doc["uid"]] = run
        fh = self._open[run]
        fh.write(json.dumps([name, _clean(doc)], default=jsonable, allow_nan=False) + "\n")
        if name == "stop":
            fh.close()
            del self._open[run]

    def _run_of(self, name: str, doc: dict[str, Any]) -> str | None:
        """The open run a document belongs to; a stray document goes to the only open run, if one."""
        if name == "start":
            return doc["uid"]
        parent = doc.get("run_start") or doc.get("descriptor") or doc.get("resource") or doc.get("stream_resource")
        run = parent if parent in self._open else self._parents.get(parent)  # type: ignore[arg-type]
        if run is None and len(self._open) == 1:
            run = next(iter(self._open))
        return run if run in self._open else None


def replay(path: Path | str, callback: Callable[[str, dict[str, Any]], Any]) -> bool:
    """Feed a run file's documents to `callback`; False (nothing fed) unless the run closed with a stop.

    A process killed mid-run leaves a file without its stop document, or with a torn last line.
    """
    docs = []
    with Path(path).open() as fh:
        for line in fh:
            try:
                name, doc = json.loads(line)
            except ValueError:
                return False
            docs.append((name, doc))
    if not docs or docs[-1][0] != "stop" or docs[-1][1].get("exit_status") != "success":
        return False
    for name, doc in docs:
        callback(name, doc)
    return True
