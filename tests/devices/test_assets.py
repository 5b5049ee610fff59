"""Row-by-row HDF5 scan files: a row write waits for a reader holding the file, and fails on anything else."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from devices.assets import HDF5AssetWriter


def test_a_row_write_waits_for_a_reader_in_this_process(tmp_path: Path) -> None:
    rows = HDF5AssetWriter(tmp_path).open_rows("scan", "frames", (3, 4, 4), "<f4")
    rows.write_row(0, np.ones((4, 4), dtype="<f4"))
    opened = threading.Event()

    def read_for_a_while() -> None:  # an analysis agent's thread reading row 0
        with h5py.File(rows.path, "r") as fh:
            fh[rows.dataset][0]
            opened.set()
            time.sleep(0.3)

    reader = threading.Thread(target=read_for_a_while)
    reader.start()
    assert opened.wait(5)
    t0 = time.monotonic()
    datum_id = rows.write_row(1, np.full((4, 4), 2.0, dtype="<f4"))
    waited_s = time.monotonic() - t0
    reader.join()
    assert datum_id and waited_s > 0.05  # it did meet the reader, and waited instead of failing
    with h5py.File(rows.path, "r") as fh:
        assert np.all(fh[rows.dataset][1] == 2.0) and np.all(fh[rows.dataset][0] == 1.0)


def test_a_row_write_to_a_missing_file_fails_at_once(tmp_path: Path) -> None:
    rows = HDF5AssetWriter(tmp_path).open_rows("scan", "frames", (2, 4, 4), "<f4")
    rows.path.unlink()
    t0 = time.monotonic()
    with pytest.raises(OSError):
        rows.write_row(0, np.zeros((4, 4), dtype="<f4"))
    assert time.monotonic() - t0 < 1.0
