"""Detector arrays go to HDF5 files referenced by resource/datum documents, never inline in events."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from event_model import ComposeResourceBundle, compose_resource
from ophyd import Signal

HDF5_SPEC = "hdf5"
"""Resource spec; bluesky's TiledWriter maps it to application/x-hdf5 with the `dataset` parameter."""
LOCK_RETRY_WALL_S = 5.0
"""How long a row write waits for a reader to let go of the file (in another process: HDF5's file lock;
in this one, an agent's thread holding it open read-only)."""


def _held_by_a_reader(exc: OSError) -> bool:
    """Whether opening a file for writing failed only because a reader has it open (worth a retry)."""
    return isinstance(exc, BlockingIOError) or "already open for read-only" in str(exc)


class ExternalArraySignal(Signal):
    """A reading that holds a datum id; `describe()` declares the array's shape and that it lives in a file."""

    def __init__(self, *args: Any, shape: tuple[int, ...] = (), dtype_numpy: str = "<f4", **kwargs: Any) -> None:
        super().__init__(*args, value="", **kwargs)
        self.shape, self.dtype_numpy = shape, dtype_numpy

    def describe(self) -> dict[str, dict[str, Any]]:
        desc = super().describe()
        desc[self.name].update(
            {"dtype": "array", "shape": list(self.shape), "external": "FILESTORE:", "dtype_numpy": self.dtype_numpy}
        )
        return desc


class HDF5AssetWriter:
    """Writes one HDF5 file per acquisition and queues its resource and datum documents."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self._docs: deque[tuple[str, dict[str, Any]]] = deque()
        self._lock = threading.Lock()

    def write(self, prefix: str, arrays: dict[str, np.ndarray], attrs: dict[str, Any] | None = None) -> dict[str, str]:
        """Write `arrays` (one dataset each, chunked and compressed) and return the datum id per key."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}-{uuid.uuid4().hex[:12]}.h5"
        with h5py.File(self.root / name, "w") as fh:
            for key, array in arrays.items():
                chunks = (1, *array.shape[1:]) if array.ndim == 4 else True
                fh.create_dataset(f"entry/{key}", data=array, chunks=chunks, compression="gzip", compression_opts=1)
            for key, value in (attrs or {}).items():
                fh["entry"].attrs[key] = value
        datum_ids = {}
        for key in arrays:
            bundle = self._resource(name, f"entry/{key}")
            datum_ids[key] = self._datum(bundle, {})
        return datum_ids

    def open_rows(
        self, prefix: str, key: str, shape: tuple[int, ...], dtype: str, attrs: dict[str, Any] | None = None
    ) -> HDF5RowFile:
        """Create one file whose dataset `entry/<key>` of `shape` is filled row by row (see `HDF5RowFile`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"{prefix}-{uuid.uuid4().hex[:12]}.h5"
        with h5py.File(self.root / name, "w") as fh:
            # One chunk per row: each row is compressed and written on its own, and read back on its own.
            fh.create_dataset(
                f"entry/{key}", shape=shape, dtype=dtype, chunks=(1, *shape[1:]), compression="gzip", compression_opts=1
            )
            for attr, value in (attrs or {}).items():
                fh["entry"].attrs[attr] = value
        return HDF5RowFile(self, self.root / name, f"entry/{key}", self._resource(name, f"entry/{key}"))

    def _resource(self, name: str, dataset: str) -> ComposeResourceBundle:
        bundle = compose_resource(
            spec=HDF5_SPEC, root=str(self.root.resolve()), resource_path=name, resource_kwargs={"dataset": dataset}
        )
        with self._lock:
            self._docs.append(("resource", dict(bundle.resource_doc)))
        return bundle

    def _datum(self, bundle: ComposeResourceBundle, datum_kwargs: dict[str, Any]) -> str:
        datum = bundle.compose_datum(datum_kwargs=datum_kwargs)
        with self._lock:
            self._docs.append(("datum", dict(datum)))
        return str(datum["datum_id"])

    def collect_asset_docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            items = list(self._docs)
            self._docs.clear()
        yield from items


class HDF5RowFile:
    """A scan written row by row into one dataset: one resource for the file, one datum per row (`row=y`).

    The file is opened for each row and closed again, so that what is on disk is always a readable file
    with every row written so far, and a reader elsewhere (an agent, a viewer) never meets a held lock
    for longer than one row's write. Only the row being written is in memory.
    """

    def __init__(self, writer: HDF5AssetWriter, path: Path, dataset: str, bundle: ComposeResourceBundle) -> None:
        self.writer, self.path, self.dataset, self._bundle = writer, path, dataset, bundle
        self.resource_uid = str(bundle.resource_doc["uid"])

    def write_row(self, row: int, frames: np.ndarray) -> str:
        """Write `frames` as row `row` of the dataset; returns the row's datum id."""
        deadline = time.monotonic() + LOCK_RETRY_WALL_S
        while True:
            try:
                with h5py.File(self.path, "r+") as fh:
                    fh[self.dataset][row] = frames
                break
            except OSError as exc:
                if not _held_by_a_reader(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)
        return self.writer._datum(self._bundle, {"row": int(row)})
