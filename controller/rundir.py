"""Write every document of every run to a run directory as JSON Lines, one file per run.

Layout: `<root>/<sample_id>/<stage>-<start uid[:8]>.jsonl`, arrays in `<root>/data/*.h5` (written by
the detectors, referenced by resource/datum documents). Resource and datum documents arrive inside
the run that uses them and are written to its file.
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


def _jsonable(obj: Any) -> Any:
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
        self._fh: IO[str] | None = None
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
            self._close()
            self._fh = path.open("w")
            self.files.append(path)
        if self._fh is not None:
            self._fh.write(json.dumps([name, _clean(doc)], default=_jsonable, allow_nan=False) + "\n")
        if name == "stop":
            self._close()

    def _close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


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
