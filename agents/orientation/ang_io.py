"""Read and write orientation maps (`orix.crystal_map.CrystalMap`) with orix: `.ang` and orix HDF5.

`load_map` accepts what `orix.io.load` reads (`.ang`, `.ctf`, orix/EMsoft/Bruker `.h5`) when it is a 2D map
on a square (or rectangular) grid; `save_map` writes `.ang` or orix HDF5 (`.h5`, `.hdf5`). `.ang` has no unit
field and orix reads it back in µm, so maps in nm (SPED) are converted to µm when written as `.ang`; orix
HDF5 keeps the scan unit. Every failure —
missing file, unknown extension, unparsable content, hexagonal grid, 3D map — is a `MapError` whose message
says what is wrong, so a command can print it as one line. orix prints phase renaming notes on stdout while
reading some `.ang` files; they are swallowed here, so `--json` output stays one JSON object.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
from orix.crystal_map import CrystalMap

READ_EXTENSIONS = (".ang", ".ctf", ".h5", ".hdf5", ".h5ebsd")
WRITE_EXTENSIONS = (".ang", ".h5", ".hdf5")


class MapError(ValueError):
    """An orientation map that cannot be read, written or analysed; the message is for the user."""


def load_map(path: str | Path) -> CrystalMap:
    """The crystal map in `path` (see the module docstring for what is accepted)."""
    from orix import io as orix_io

    path = Path(path)
    if not path.is_file():
        raise MapError(f"no such orientation map: {path}")
    suffix = path.suffix.lower()
    if suffix not in READ_EXTENSIONS:
        raise MapError(f"unsupported orientation-map format {suffix or '(none)'!r}: use one of {READ_EXTENSIONS}")
    if suffix == ".ang":
        _check_ang_grid(path)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            xmap = orix_io.load(str(path))
    except Exception as exc:  # orix raises whatever its parser meets (ValueError, KeyError, OSError, ...)
        raise MapError(f"cannot read orientation map {path}: {type(exc).__name__}: {exc}") from exc
    if not isinstance(xmap, CrystalMap):
        raise MapError(f"{path} holds no crystal map")
    if xmap.size == 0:
        raise MapError(f"{path} holds an empty crystal map")
    if len(xmap.shape) != 2:
        raise MapError(f"{path} is not a 2D map (shape {xmap.shape})")
    return xmap


def save_map(xmap: CrystalMap, path: str | Path) -> Path:
    """Write `xmap` to `path` (`.ang` or orix HDF5 `.h5`/`.hdf5`), replacing an existing file."""
    from orix import io as orix_io

    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in WRITE_EXTENSIONS:
        raise MapError(f"cannot write orientation maps as {suffix or '(none)'!r}: use one of {WRITE_EXTENSIONS}")
    if not path.parent.is_dir():
        raise MapError(f"no such directory: {path.parent}")
    if suffix == ".ang":
        xmap = _in_micrometres(xmap)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            orix_io.save(str(path), xmap, overwrite=True)
    except Exception as exc:
        raise MapError(f"cannot write orientation map {path}: {type(exc).__name__}: {exc}") from exc
    return path


def _in_micrometres(xmap: CrystalMap) -> CrystalMap:
    """The map with coordinates in µm: `.ang` has no unit field and orix reads every `.ang` back as µm."""
    unit = str(xmap.scan_unit).strip()
    factor = {"nm": 1e-3, "um": 1.0, "µm": 1.0, "μm": 1.0, "mm": 1e3}.get(unit)
    if factor is None:
        raise MapError(f"cannot write a map in scan unit {unit!r} as .ang (µm only): use .h5")
    if factor == 1.0:
        return xmap
    return CrystalMap(
        rotations=xmap.rotations,
        phase_id=xmap.phase_id,
        x=xmap.x * factor,
        y=xmap.y * factor,
        phase_list=xmap.phases.deepcopy(),
        prop={name: np.asarray(value) for name, value in xmap.prop.items()},
        scan_unit="um",
    )


def _check_ang_grid(path: Path) -> None:
    """Refuse hexagonal-grid `.ang` files: orix reads them as if square, which breaks the neighbours."""
    with open(path, errors="replace") as f:
        for line in f:
            if not line.startswith("#"):
                break
            fields = line[1:].replace(":", " ").split()
            if len(fields) >= 2 and fields[0].upper() == "GRID" and fields[1].lower().startswith("hex"):
                raise MapError(
                    f"{path} is on a hexagonal grid: only square grids are supported (resample it to a square grid)"
                )
