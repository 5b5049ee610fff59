"""Loading SPED scans: the simulator's HDF5, hyperspy files, and a clear ScanError for everything else."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from agents.orientation.scan_input import ScanError, load_scan, scan_from_array
from devices.assets import HDF5AssetWriter

CAL = 2.4 / 64


def _patterns(shape: tuple[int, ...] = (3, 4, 64, 64)) -> np.ndarray:
    return np.random.default_rng(0).poisson(3.0, shape).astype(np.uint16)


def _writer_file(tmp_path: Path, attrs: dict | None = None, data: np.ndarray | None = None) -> Path:
    HDF5AssetWriter(tmp_path).write("sped", {"patterns": _patterns() if data is None else data}, attrs)
    return next(tmp_path.glob("sped-*.h5"))


def test_simulator_hdf5(tmp_path: Path) -> None:
    data = _patterns()
    path = _writer_file(tmp_path, {"calibration_a_inv_per_px": CAL, "step_nm": 8.0, "sample_id": "s1"}, data)
    with load_scan(path) as scan:
        assert scan.scan_shape == (3, 4) and scan.pattern_px == 64
        assert scan.calibration_a_inv_per_px == pytest.approx(CAL)
        assert scan.step_nm == 8.0 and scan.center_px == 31.5
        rows = list(scan.iter_rows())
        np.testing.assert_array_equal(rows[2][1], data[2])


def test_hyperspy_file_with_calibrated_axes(tmp_path: Path) -> None:
    import hyperspy.api as hs
    import pyxem as pxm

    hs.set_log_level("ERROR")
    data = _patterns()
    signal = pxm.signals.Diffraction2D(data)
    for axis in signal.axes_manager.signal_axes:
        axis.scale, axis.units, axis.offset = CAL, "k_A^-1", -32.0 * CAL
    for axis in signal.axes_manager.navigation_axes:
        axis.scale, axis.units = 5.0, "nm"
    path = tmp_path / "scan.hspy"
    signal.save(path)
    with load_scan(path) as scan:
        assert scan.scan_shape == (3, 4)
        assert scan.calibration_a_inv_per_px == pytest.approx(CAL)
        assert scan.center_px == pytest.approx(32.0)
        assert scan.step_nm == pytest.approx(5.0)
        np.testing.assert_array_equal(scan.row(1), data[1])


def test_uncalibrated_hyperspy_file(tmp_path: Path) -> None:
    import hyperspy.api as hs

    hs.set_log_level("ERROR")
    path = tmp_path / "raw.hspy"
    hs.signals.Signal2D(_patterns()).save(path)
    with pytest.raises(ScanError, match="not calibrated"):
        load_scan(path)


def test_wrong_dimensionality(tmp_path: Path) -> None:
    import hyperspy.api as hs

    hs.set_log_level("ERROR")
    path = tmp_path / "image.hspy"
    hs.signals.Signal2D(np.zeros((64, 64))).save(path)
    with pytest.raises(ScanError, match="navigation"):
        load_scan(path)
    with h5py.File(tmp_path / "three.h5", "w") as fh:
        fh["entry/frames"] = np.zeros((4, 8, 8))
        fh["entry"].attrs["calibration_a_inv_per_px"] = CAL
    with pytest.raises(ScanError, match="4-D"):
        load_scan(tmp_path / "three.h5")
    with pytest.raises(ScanError, match="4-D"):
        scan_from_array(np.zeros((4, 8, 8)), CAL, 1.0)


def test_missing_calibration_empty_missing_and_corrupt(tmp_path: Path) -> None:
    with pytest.raises(ScanError, match="calibration"):
        load_scan(_writer_file(tmp_path / "a", {"step_nm": 8.0}))
    empty = tmp_path / "empty.h5"
    with h5py.File(empty, "w") as fh:
        fh["entry/patterns"] = np.zeros((0, 4, 64, 64), np.uint16)
        fh["entry"].attrs["calibration_a_inv_per_px"] = CAL
    with pytest.raises(ScanError, match="empty"):
        load_scan(empty)
    with pytest.raises(ScanError, match="no such file"):
        load_scan(tmp_path / "nope.h5")
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00" * 64)
    with pytest.raises(ScanError, match="HDF5"):
        load_scan(corrupt)
    junk = tmp_path / "junk.zspy"
    junk.write_text("not a zarr store")
    with pytest.raises(ScanError):
        load_scan(junk)
    with pytest.raises(ScanError, match="calibration"):
        scan_from_array(np.zeros((1, 1, 8, 8)), 0.0, 1.0)
