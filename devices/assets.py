"""Detector arrays go to HDF5 files referenced by resource/datum documents, never inline in events."""

from __future__ import annotations

import threading
import uuid
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from event_model import compose_resource
from ophyd import Signal

HDF5_SPEC = "hdf5"
"""Resource spec; bluesky's TiledWriter maps it to application/x-hdf5 with the `dataset` parameter."""


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
        with self._lock:
            for key in arrays:
                bundle = compose_resource(
                    spec=HDF5_SPEC,
                    root=str(self.root.resolve()),
                    resource_path=name,
                    resource_kwargs={"dataset": f"entry/{key}"},
                )
                datum = bundle.compose_datum(datum_kwargs={})
                self._docs.append(("resource", dict(bundle.resource_doc)))
                self._docs.append(("datum", dict(datum)))
                datum_ids[key] = datum["datum_id"]
        return datum_ids

    def collect_asset_docs(self) -> Iterator[tuple[str, dict[str, Any]]]:
        with self._lock:
            items = list(self._docs)
            self._docs.clear()
        yield from items
