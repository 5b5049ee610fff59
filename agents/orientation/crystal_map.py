"""Indexing results on the scan grid as an orix `CrystalMap` (the currency of grains, plots and `.ang` files).

Point i of an `IndexResult` is scan pixel (row, col) = divmod(i, nx) — row-major, the order rows arrive in.
`x` = col·step, `y` = row·step (nm). Phase id −1 marks points that were not indexed; the map's properties
hold ``correlation`` and ``reliability``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from orix.crystal_map import CrystalMap, Phase, PhaseList
from orix.quaternion import Rotation

from agents.orientation.indexing import IndexResult
from agents.orientation.phases import load_phase

__all__ = ["to_crystal_map"]

_COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown", "tab:pink")


def to_crystal_map(
    result: IndexResult, scan_shape: tuple[int, int], step_nm: float, phase_names: Sequence[str | Phase]
) -> CrystalMap:
    """The (ny, nx) crystal map of `result`; `phase_names[i]` (a name, CIF path or `Phase`) is phase id i."""
    ny, nx = (int(n) for n in scan_shape)
    if len(result) != ny * nx:
        raise ValueError(f"{len(result)} results do not fill a {ny}×{nx} scan")
    phases = [p.deepcopy() if isinstance(p, Phase) else load_phase(p) for p in phase_names]
    for phase, color in zip(phases, _COLORS * (1 + len(phases) // len(_COLORS)), strict=False):
        phase.color = color
    phase_list = PhaseList(phases=phases, ids=list(range(len(phases))))
    rows, cols = np.divmod(np.arange(ny * nx), nx)
    phase_id = result.phase_index.astype(int)
    if (phase_id == -1).any():
        phase_list.add_not_indexed()
    return CrystalMap(
        rotations=Rotation(result.quaternions),
        phase_id=phase_id,
        x=cols * float(step_nm),
        y=rows * float(step_nm),
        phase_list=phase_list,
        prop={"correlation": result.correlation.astype(float), "reliability": result.reliability.astype(float)},
        scan_unit="nm",
    )
