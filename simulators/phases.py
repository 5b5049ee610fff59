"""Crystal structures of the phases the simulated lab can make, as orix `Phase`s for diffsims.

Each structure is written as its asymmetric unit (Wyckoff sites, literature settings) and expanded
with the space group's operations, so `len(phase(name).structure)` lists every site of the cell
(partially occupied sites once per species). Lattices are built in diffpy's standard setting on
purpose: orix re-expresses them with a ∥ x and c* ∥ z, and diffsims' structure-factor code undoes
exactly that re-expression; a hand-aligned lattice would get wrong structure factors for WC.

Sites:
  Ba122    Ba0.6K0.4Fe2As2, I4/mmm (139): (Ba,K) 2a; Fe 4d (0,½,¼); As 4e (0,0,z) — 2 f.u., 10 atoms
  KFe2As2  I4/mmm: K 2a, Fe 4d, As 4e
  FeAs     MnP type, Pnma (62): Fe 4c, As 4c — 8 atoms
  Fe2As    Cu2Sb type, P4/nmm (129, origin choice 1 as in diffpy): Fe1 2a; Fe2, As 2c (0,½,z) — 6 atoms
  BaO      rock salt, Fm-3m (225): Ba 4a, O 4b — 8 atoms
  WC       P-6m2 (187): W 1a, C 1d (⅓,⅔,½) — 2 atoms
  Fe       bcc, Im-3m (229): Fe 2a — 2 atoms
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from diffpy.structure import Atom, Lattice, Structure
from orix.crystal_map import Phase

from simulators.sample import ALL_PHASES

__all__ = ["phase", "phase_names"]


@dataclass(frozen=True)
class _Site:
    element: str
    xyz: tuple[float, float, float]
    occupancy: float = 1.0


@dataclass(frozen=True)
class _CellSpec:
    space_group: int
    lattice: tuple[float, float, float, float, float, float]  # a, b, c (Å), α, β, γ (°)
    sites: tuple[_Site, ...]


def _thcr2si2(a: float, c: float, z_as: float, cations: tuple[_Site, ...]) -> _CellSpec:
    return _CellSpec(
        139,
        (a, a, c, 90.0, 90.0, 90.0),
        (*cations, _Site("Fe", (0.0, 0.5, 0.25)), _Site("As", (0.0, 0.0, z_as))),
    )


# Literature values (science.md §2 and the brief); every number here is a [K] crystallographic constant.
_SPECS: dict[str, _CellSpec] = {
    "Ba122": _thcr2si2(3.917, 13.30, 0.354, (_Site("Ba", (0.0, 0.0, 0.0), 0.6), _Site("K", (0.0, 0.0, 0.0), 0.4))),
    "KFe2As2": _thcr2si2(3.84, 13.86, 0.353, (_Site("K", (0.0, 0.0, 0.0)),)),
    "FeAs": _CellSpec(
        62,
        (5.44, 3.37, 6.03, 90.0, 90.0, 90.0),
        (_Site("Fe", (0.0027, 0.25, 0.1994)), _Site("As", (0.1992, 0.25, 0.5773))),
    ),
    # diffpy's P4/nmm is origin choice 1: the usual choice-2 sites (¾,¼,0) / (¼,¼,z) shift by (−¼,¼,0).
    "Fe2As": _CellSpec(
        129,
        (3.627, 3.627, 5.981, 90.0, 90.0, 90.0),
        (
            _Site("Fe", (0.0, 0.0, 0.0)),
            _Site("Fe", (0.0, 0.5, 0.3397)),
            _Site("As", (0.0, 0.5, 0.7349)),
        ),
    ),
    "BaO": _CellSpec(
        225, (5.52, 5.52, 5.52, 90.0, 90.0, 90.0), (_Site("Ba", (0.0, 0.0, 0.0)), _Site("O", (0.5, 0.5, 0.5)))
    ),
    "WC": _CellSpec(
        187,
        (2.906, 2.906, 2.837, 90.0, 90.0, 120.0),
        (_Site("W", (0.0, 0.0, 0.0)), _Site("C", (1 / 3, 2 / 3, 0.5))),
    ),
    "Fe": _CellSpec(229, (2.8665, 2.8665, 2.8665, 90.0, 90.0, 90.0), (_Site("Fe", (0.0, 0.0, 0.0)),)),
}

if set(_SPECS) != set(ALL_PHASES):  # pragma: no cover - guards against the two lists drifting apart
    raise RuntimeError(f"phases.py knows {sorted(_SPECS)}, sample.py lists {sorted(ALL_PHASES)}")


def phase_names() -> tuple[str, ...]:
    """Phase names in `simulators.sample.ALL_PHASES` order (index = phase id in sections and scans)."""
    return ALL_PHASES


@cache
def phase(name: str) -> Phase:
    """The orix `Phase` (space group, lattice, full unit cell) of one of `ALL_PHASES`.

    Cached and shared between callers: treat it as read-only (use `.deepcopy()` to modify).
    """
    try:
        spec = _SPECS[name]
    except KeyError:
        raise KeyError(f"unknown phase {name!r}; expected one of {ALL_PHASES}") from None
    atoms = [Atom(s.element, s.xyz, occupancy=s.occupancy) for s in spec.sites]
    structure = Structure(atoms=atoms, lattice=Lattice(*spec.lattice), title=name)
    expanded = Phase(name, space_group=spec.space_group, structure=structure).expand_asymmetric_unit()
    expanded.name = name
    return expanded
