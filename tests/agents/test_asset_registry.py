"""AssetRegistry.read: waits out the writer's HDF5 lock (bounded), says clearly when it cannot."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from agents.analysis_stream import AssetError, AssetRegistry
from devices.assets import HDF5_SPEC

HOLD = """
import sys, time, h5py
with h5py.File(sys.argv[1], "a"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def registry(path: Path, lock_wait_s: float) -> AssetRegistry:
    reg = AssetRegistry(lock_wait_s=lock_wait_s)
    reg.add_resource({"uid": "r", "spec": HDF5_SPEC, "root": str(path.parent), "resource_path": path.name,
                      "resource_kwargs": {"dataset": "rows"}})  # fmt: skip
    reg.add_datum({"datum_id": "r/1", "resource": "r", "datum_kwargs": {"row": 1}})
    return reg


def hold_lock(path: Path, seconds: float) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
    return proc


@pytest.fixture
def scan_file(tmp_path: Path) -> Path:
    path = tmp_path / "scan.h5"
    with h5py.File(path, "w") as fh:
        fh["rows"] = np.arange(24, dtype=np.float32).reshape(3, 2, 4)
    return path


def test_a_locked_file_is_read_once_its_writer_lets_go(scan_file: Path) -> None:
    proc = hold_lock(scan_file, 0.6)
    try:
        t0 = time.monotonic()
        row = registry(scan_file, lock_wait_s=20).read("r/1")
        waited_s = time.monotonic() - t0
    finally:
        proc.wait(20)
    np.testing.assert_array_equal(row, np.arange(8, 16, dtype=np.float32).reshape(2, 4))
    assert waited_s > 0.2  # it did meet the lock


def test_a_file_locked_too_long_is_a_clear_error(scan_file: Path) -> None:
    proc = hold_lock(scan_file, 3.0)
    try:
        with pytest.raises(AssetError, match=r"still locked by its writer after 0\.3 s"):
            registry(scan_file, lock_wait_s=0.3).read("r/1")
    finally:
        proc.wait(20)
