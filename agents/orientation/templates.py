"""Kinematical template libraries: one diffsims spot list per beam direction, built once, cached on disk.

A library samples the beam directions (the crystal direction parallel to the electron beam) of one phase
over the fundamental sector of the *proper* part of its Laue group (orix `get_sample_reduced_fundamental`
on e.g. 422 for 4/mmm), each with the in-plane angle fixed. The indexer scans the in-plane angle itself
(a shift along the azimuth), so these directions cover every orientation with no mirror templates.

Conventions: `orientations[i]` is an orix `Orientation` quaternion (w, x, y, z), sample → crystal, given
to diffsims unchanged; its spots are at ``(~O * g).xy`` in Å⁻¹ on the detector (+x = column, +y = row),
as in `simulators.sped`. `beam_directions[i]` is ``O * ẑ`` in the crystal's Cartesian frame.

Libraries are cached as `.npz` under ``$GRAINLOOP_CACHE_DIR`` (default ``~/.cache/grainloop``), keyed by a
hash of the phase's structure and the simulation parameters; a corrupt cache file is rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from orix.crystal_map import Phase
from orix.quaternion import Rotation
from orix.sampling import get_sample_reduced_fundamental

__all__ = ["TemplateLibrary", "build_library", "cache_dir", "get_library"]

LIBRARY_VERSION = 1
"""Bump when the content of a library changes for the same parameters (invalidates caches)."""


@dataclass(frozen=True)
class TemplateLibrary:
    """Spots of every template of one phase, stored flat (CSR-like: template i owns spots[offsets[i]:offsets[i+1]])."""

    phase_name: str
    orientations: np.ndarray  # (n, 4) float64
    beam_directions: np.ndarray  # (n, 3) float64, unit
    offsets: np.ndarray  # (n + 1,) int64
    spot_xy_per_a: np.ndarray  # (n_spots, 2) float32 detector-frame g_x, g_y (Å⁻¹)
    spot_intensity: np.ndarray  # (n_spots,) float32 kinematical intensity (precession-integrated)
    symmetry: np.ndarray  # (m, 4) proper Laue-group rotations, for disorientations
    resolution_deg: float

    @property
    def size(self) -> int:
        return len(self.orientations)


def cache_dir() -> Path:
    """``$GRAINLOOP_CACHE_DIR`` (default ``~/.cache/grainloop``) / ``orientation-templates``."""
    root = os.environ.get("GRAINLOOP_CACHE_DIR") or Path.home() / ".cache" / "grainloop"
    return Path(root) / "orientation-templates"


def _phase_fingerprint(phase: Phase) -> dict:
    lattice = phase.structure.lattice
    atoms = sorted((a.element, *np.round(a.xyz, 5).tolist(), round(float(a.occupancy), 4)) for a in phase.structure)
    return {
        "name": phase.name,
        "space_group": phase.space_group.number if phase.space_group is not None else None,
        "lattice": np.round(lattice.abcABG(), 6).tolist(),
        "atoms": atoms,
    }


def _cache_key(phase: Phase, params: dict) -> str:
    blob = json.dumps({"v": LIBRARY_VERSION, "phase": _phase_fingerprint(phase), **params}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def build_library(
    phase: Phase,
    *,
    resolution_deg: float,
    beam_energy_kev: float,
    precession_angle_deg: float,
    reciprocal_radius_per_a: float,
    max_excitation_error_per_a: float,
) -> TemplateLibrary:
    """Simulate the library with diffsims (no cache); see the module docstring for the conventions."""
    from diffsims.generators.simulation_generator import SimulationGenerator

    proper = phase.point_group.laue.proper_subgroup
    rotations = get_sample_reduced_fundamental(resolution=resolution_deg, point_group=proper)
    generator = SimulationGenerator(accelerating_voltage=beam_energy_kev, precession_angle=precession_angle_deg)
    sim = generator.calculate_diffraction2d(
        phase,
        rotations,
        reciprocal_radius=reciprocal_radius_per_a,
        with_direct_beam=False,
        max_excitation_error=max_excitation_error_per_a,
    )
    coordinates = sim.coordinates
    coordinates = list(np.ravel(coordinates)) if isinstance(coordinates, np.ndarray) else [coordinates]
    counts, xy, intensity = [], [], []
    for vectors in coordinates:
        data = np.asarray(vectors.data, dtype=float).reshape(-1, 3)
        counts.append(len(data))
        xy.append(data[:, :2])
        intensity.append(np.asarray(vectors.intensity, dtype=float).reshape(-1))
    quaternions = rotations.data.reshape(-1, 4)
    beam = (Rotation(quaternions) * _z_axis()).unit.data.reshape(-1, 3)
    return TemplateLibrary(
        phase_name=phase.name,
        orientations=quaternions.astype(np.float64),
        beam_directions=beam.astype(np.float64),
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        spot_xy_per_a=np.concatenate(xy).astype(np.float32),
        spot_intensity=np.concatenate(intensity).astype(np.float32),
        symmetry=proper.data.reshape(-1, 4).astype(np.float64),
        resolution_deg=float(resolution_deg),
    )


def _z_axis():
    from orix.vector import Vector3d

    return Vector3d.zvector()


def get_library(
    phase: Phase,
    *,
    resolution_deg: float = 1.0,
    beam_energy_kev: float = 200.0,
    precession_angle_deg: float = 0.5,
    reciprocal_radius_per_a: float = 1.8,
    max_excitation_error_per_a: float = 0.02,
    use_cache: bool = True,
) -> TemplateLibrary:
    """The library of `phase` from the disk cache, simulated and cached on a miss."""
    params = {
        "resolution_deg": round(float(resolution_deg), 6),
        "beam_energy_kev": round(float(beam_energy_kev), 6),
        "precession_angle_deg": round(float(precession_angle_deg), 6),
        "reciprocal_radius_per_a": round(float(reciprocal_radius_per_a), 6),
        "max_excitation_error_per_a": round(float(max_excitation_error_per_a), 6),
    }
    path = cache_dir() / f"{phase.name}-{_cache_key(phase, params)}.npz"
    if use_cache and path.is_file():
        try:
            with np.load(path, allow_pickle=False) as f:
                return TemplateLibrary(
                    phase_name=str(f["phase_name"]),
                    orientations=f["orientations"],
                    beam_directions=f["beam_directions"],
                    offsets=f["offsets"],
                    spot_xy_per_a=f["spot_xy_per_a"],
                    spot_intensity=f["spot_intensity"],
                    symmetry=f["symmetry"],
                    resolution_deg=float(f["resolution_deg"]),
                )
        except Exception:
            pass
    library = build_library(phase, **params)
    if use_cache:
        _save(library, path)
    return library


def _save(library: TemplateLibrary, path: Path) -> None:
    """Write atomically (temporary file, then rename) so concurrent builders never see half a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as fh:
            np.savez(
                fh,
                phase_name=np.array(library.phase_name),
                orientations=library.orientations,
                beam_directions=library.beam_directions,
                offsets=library.offsets,
                spot_xy_per_a=library.spot_xy_per_a,
                spot_intensity=library.spot_intensity,
                symmetry=library.symmetry,
                resolution_deg=np.array(library.resolution_deg),
            )
        os.replace(tmp, path)
    except OSError:  # a read-only home is no reason to fail: the library is in memory
        pass
