"""Crystal phases the orientation agent can index: known names or a CIF file, as orix `Phase`s.

Known names are the phases a (Ba,K)Fe2As2 campaign meets — the structure table of `simulators.phases`
(literature cells, expanded with their space groups), so the indexer and the simulated lab can never
disagree about a lattice. Any other phase comes from a CIF file.
"""

from __future__ import annotations

from pathlib import Path

from orix.crystal_map import Phase

from simulators.phases import phase as known_phase
from simulators.phases import phase_names
from simulators.sample import MATRIX_PHASE

__all__ = ["KNOWN_PHASES", "MATRIX_PHASE", "PhaseError", "load_phase"]

KNOWN_PHASES: tuple[str, ...] = phase_names()
"""Names `load_phase` knows without a CIF: the matrix first, then secondary phases and wear debris."""


class PhaseError(ValueError):
    """An unknown phase name or an unreadable CIF; the message is for the user."""


def load_phase(name_or_cif: str | Path) -> Phase:
    """The orix `Phase` of a known phase name (`KNOWN_PHASES`) or of a CIF file (a copy: safe to modify)."""
    text = str(name_or_cif)
    if text in KNOWN_PHASES:
        return known_phase(text).deepcopy()
    path = Path(text)
    if path.suffix.lower() != ".cif":
        raise PhaseError(f"unknown phase {text!r}: expected one of {', '.join(KNOWN_PHASES)} or a .cif file")
    if not path.is_file():
        raise PhaseError(f"CIF file not found: {path}")
    try:
        phase = Phase.from_cif(str(path))
    except Exception as exc:  # orix/diffpy raise many types on a bad file
        raise PhaseError(f"cannot read CIF {path}: {exc}") from None
    if phase.space_group is None or len(phase.structure) == 0:
        raise PhaseError(f"CIF {path} has no space group or no atoms")
    phase.name = phase.name or path.stem
    return phase
