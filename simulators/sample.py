"""Hidden per-sample state handed from one simulated instrument to the next."""

from __future__ import annotations

from dataclasses import dataclass, field

MATRIX_PHASE = "Ba122"
"""The superconducting (Ba,K)Fe2As2 phase, I4/mmm."""
SECONDARY_PHASES = ("KFe2As2", "FeAs", "Fe2As", "BaO")
"""Reaction by-products and oxides: label class 3 (secondary phase)."""
CONTAMINANT_PHASES = ("WC", "Fe")
"""Wear debris from balls and vial: label class 4 (contamination)."""
ALL_PHASES = (MATRIX_PHASE, *SECONDARY_PHASES, *CONTAMINANT_PHASES)


@dataclass(frozen=True)
class SinteredBody:
    """The truth about a sintered sample that the microscope and SPED image (never shown to the controller).

    `phase_fractions` are volume fractions of the solid (not of pores) by phase name, the matrix included;
    they sum to 1. `texture_fraction` is the share of grains whose c axis lies near the pressing axis.
    """

    relative_density: float
    grain_size_nm: float
    phase_fractions: dict[str, float]
    gb_oxide_fraction: float
    composition_x: float
    texture_fraction: float = 0.0
    extras: dict[str, float] = field(default_factory=dict)
