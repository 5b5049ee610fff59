"""Load a SPED scan (4D: scan y, scan x, pattern row, pattern column) with its reciprocal-space calibration.

Accepted: the simulated lab's HDF5 (`devices.assets.HDF5AssetWriter`: dataset ``entry/patterns``,
attributes ``calibration_a_inv_per_px`` and ``step_nm`` on ``entry``; any HDF5 with one 4-D dataset and
those attributes works), and whatever hyperspy/pyxem load as a 4-D signal with calibrated reciprocal axes
(``.hspy``, ``.zspy``, …). Patterns stay on disk (h5py dataset or lazy signal) and are read row by row.

Conventions: the pattern column is +k_x, the row +k_y (pyxem's); the direct beam at `center_px` (row = col;
from the signal axes' offset, else the middle). Every problem is a `ScanError` with a one-line message.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["ScanData", "ScanError", "load_scan"]

_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".nxs")
_LENGTH_NM = {"nm": 1.0, "µm": 1e3, "um": 1e3, "μm": 1e3, "Å": 0.1, "A": 0.1, "pm": 1e-3}


class ScanError(ValueError):
    """A scan that cannot be indexed; the message says why, for the user."""


@dataclass
class ScanData:
    """A 4-D scan: `patterns[y]` is one row (nx, qy, qx); read it with `row` or `iter_rows`."""

    patterns: Any  # (ny, nx, qy, qx) numpy array, h5py dataset or dask array
    calibration_a_inv_per_px: float
    step_nm: float
    center_px: float
    source: str = ""
    _handle: Any = None

    @property
    def scan_shape(self) -> tuple[int, int]:
        return int(self.patterns.shape[0]), int(self.patterns.shape[1])

    @property
    def pattern_px(self) -> int:
        return int(self.patterns.shape[-1])

    def row(self, y: int) -> np.ndarray:
        data = self.patterns[y]
        return np.asarray(data.compute() if hasattr(data, "compute") else data)

    def iter_rows(self) -> Iterator[tuple[int, np.ndarray]]:
        for y in range(self.scan_shape[0]):
            yield y, self.row(y)

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None

    def __enter__(self) -> ScanData:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check(patterns: Any, calibration: float, step_nm: float, center_px: float | None, source: str) -> ScanData:
    shape = tuple(int(n) for n in patterns.shape)
    if len(shape) != 4:
        raise ScanError(f"{source}: expected a 4-D scan (ny, nx, qy, qx), got {len(shape)}-D data of shape {shape}")
    if min(shape) == 0:
        raise ScanError(f"{source}: the scan is empty (shape {shape})")
    if shape[2] != shape[3]:
        raise ScanError(f"{source}: patterns must be square, got {shape[2]}×{shape[3]}")
    if not np.issubdtype(np.dtype(patterns.dtype), np.number) or np.dtype(patterns.dtype).kind == "c":
        raise ScanError(f"{source}: patterns must be real numbers, got dtype {patterns.dtype}")
    if not (np.isfinite(calibration) and calibration > 0):
        raise ScanError(f"{source}: no reciprocal-space calibration (Å⁻¹ per pixel) — got {calibration!r}")
    if not (np.isfinite(step_nm) and step_nm > 0):
        raise ScanError(f"{source}: invalid scan step {step_nm!r} nm")
    center = (shape[3] - 1) / 2.0 if center_px is None else float(center_px)
    if not 0 <= center <= shape[3] - 1:
        raise ScanError(f"{source}: direct beam at {center:.1f} px lies outside the {shape[3]}-px pattern")
    return ScanData(patterns, float(calibration), float(step_nm), center, source)


def _load_hdf5(path: Path) -> ScanData:
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise ScanError(f"{path}: not a readable HDF5 file ({exc})") from None
    try:
        found: list[Any] = []
        handle.visititems(lambda _, obj: found.append(obj) if isinstance(obj, h5py.Dataset) and obj.ndim >= 1 else None)
        if "entry/patterns" in handle:
            dataset = handle["entry/patterns"]
        else:
            four_d = [d for d in found if d.ndim == 4]
            if len(four_d) != 1:
                dims = sorted({d.ndim for d in found})
                raise ScanError(f"{path}: expected one 4-D dataset (entry/patterns), found datasets of ndim {dims}")
            dataset = four_d[0]
        attrs: dict[str, Any] = {}
        for node in (handle, dataset.parent, dataset):
            attrs.update({k: v for k, v in node.attrs.items()})
        if "calibration_a_inv_per_px" not in attrs:
            raise ScanError(f"{path}: missing attribute calibration_a_inv_per_px (reciprocal-space calibration)")
        calibration = float(np.asarray(attrs["calibration_a_inv_per_px"]).reshape(-1)[0])
        step_nm = float(np.asarray(attrs.get("step_nm", 1.0)).reshape(-1)[0])
        center = attrs.get("center_px")
        scan = _check(dataset, calibration, step_nm, None if center is None else float(center), str(path))
    except ScanError:
        handle.close()
        raise
    except Exception as exc:
        handle.close()
        raise ScanError(f"{path}: cannot read the scan ({type(exc).__name__}: {exc})") from None
    scan._handle = handle
    return scan


def _load_hyperspy(path: Path) -> ScanData:
    import hyperspy.api as hs

    hs.set_log_level("ERROR")
    try:
        signal = hs.load(str(path), lazy=True)
    except Exception as exc:
        raise ScanError(f"{path}: hyperspy cannot load it ({type(exc).__name__}: {exc})") from None
    if isinstance(signal, list):
        raise ScanError(f"{path}: holds {len(signal)} signals; expected one 4-D diffraction signal")
    am = signal.axes_manager
    if am.navigation_dimension != 2 or am.signal_dimension != 2:
        raise ScanError(
            f"{path}: expected 2 navigation and 2 signal axes, got {am.navigation_dimension} and {am.signal_dimension}"
        )
    kx, ky = am.signal_axes
    units = str(kx.units)
    if units in ("<undefined>", "", "px", "pixels") or (kx.scale == 1.0 and "A" not in units and "Å" not in units):
        raise ScanError(f"{path}: the reciprocal axes are not calibrated (units {units!r}, scale {kx.scale})")
    if not np.isclose(kx.scale, ky.scale, rtol=1e-3):
        raise ScanError(f"{path}: kx and ky calibrations differ ({kx.scale} vs {ky.scale})")
    scale = float(kx.scale)
    if "nm" in units:  # nm⁻¹ → Å⁻¹
        scale /= 10.0
    center = -float(kx.offset) / float(kx.scale) if kx.offset != 0 else None
    x_axis = am.navigation_axes[0]
    step_nm = float(x_axis.scale) * _LENGTH_NM.get(str(x_axis.units), 1.0)
    data = signal.data  # dask array (ny, nx, qy, qx)
    return _check(data, scale, step_nm, center, str(path))


def load_scan(path: str | Path) -> ScanData:
    """Open the scan at `path` (see the module docstring); close it with `close()` or a `with` block."""
    path = Path(path)
    if not path.exists():
        raise ScanError(f"{path}: no such file")
    if path.suffix.lower() in _HDF5_SUFFIXES:
        return _load_hdf5(path)
    return _load_hyperspy(path)


def scan_from_array(
    patterns: np.ndarray, calibration_a_inv_per_px: float, step_nm: float, center_px: float | None = None
) -> ScanData:
    """Wrap an in-memory (ny, nx, qy, qx) array with the same checks as a file."""
    return _check(np.asarray(patterns), calibration_a_inv_per_px, step_nm, center_px, "array")
