"""pyxem 0.21's documented template-matching workflow, with its orientation convention fixed: the anchor.

The steps are those of pyxem's orientation-mapping examples: calibrated `Diffraction2D`, centre in the
middle, ``get_azimuthal_integral2d(npt=100, npt_azim=360, mean=True)``, a radial-median background
subtraction (pyxem's `subtract_diffraction_background`; without it the direct beam and halo drive every
pattern to a handful of templates), a library from ``get_sample_reduced_fundamental`` on the phase's
point group at 1°, ``calculate_diffraction2d(..., with_direct_beam=False)`` and ``get_orientation(sim)``
with its defaults (``frac_keep=0.1``, mirror templates). The simulation physics (beam energy, precession
angle, excitation error) is the experiment's, the same as grainloop's, so the comparison is about the
method, not about mismatched templates.

Convention fix (measured here by round trips, `tests/agents/orientation/test_indexing.py`): pyxem's
`to_single_phase_orientations()` is ~60° off. With T the matched library rotation, θ the reported
in-plane angle (degrees) and f the mirror factor, the orientation in orix's convention is
``O = T ⊗ M ⊗ Rz(θ + 180°)`` with ``M = Ry(180°)`` when f = +1 and the identity when f = −1 — pyxem's
polar azimuth runs the other way round from ``atan2(g_y, g_x)``, so its "direct" template is the mirror.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass

import numpy as np
from orix.crystal_map import Phase

from agents.orientation.indexing import IndexResult
from agents.orientation.misorientation import quaternion_multiply, z_rotation

__all__ = ["AnchorRun", "pyxem_orientations", "run_pyxem_anchor"]


@dataclass(frozen=True)
class AnchorRun:
    result: IndexResult
    seconds_indexing: float  # polar transform + background + get_orientation + conversion
    seconds_library: float  # diffsims simulation of the template library


def pyxem_orientations(match: np.ndarray, library_quaternions: np.ndarray) -> np.ndarray:
    """(N, 4) orix-convention quaternions from pyxem's (N, 4) [index, correlation, angle_deg, factor] rows."""
    index, _, angle_deg, factor = np.asarray(match, dtype=float).T
    template = np.asarray(library_quaternions, dtype=float).reshape(-1, 4)[index.astype(int)]
    mirror = np.where(factor[:, None] > 0, np.array([0.0, 0.0, 1.0, 0.0]), np.array([1.0, 0.0, 0.0, 0.0]))
    quats = quaternion_multiply(quaternion_multiply(template, mirror), z_rotation(np.deg2rad(angle_deg + 180.0)))
    return np.where(quats[:, :1] < 0, -quats, quats)


def run_pyxem_anchor(
    patterns: np.ndarray,
    calibration_a_inv_per_px: float,
    phase: Phase,
    *,
    resolution_deg: float = 1.0,
    beam_energy_kev: float = 200.0,
    precession_angle_deg: float = 0.5,
    max_excitation_error_per_a: float = 0.02,
) -> AnchorRun:
    """Index (ny, nx, qy, qx) patterns of one phase with pyxem; quaternions in orix convention."""
    import hyperspy.api as hs
    import pyxem as pxm
    from diffsims.generators.simulation_generator import SimulationGenerator
    from orix.sampling import get_sample_reduced_fundamental

    hs.set_log_level("ERROR")
    patterns = np.asarray(patterns)
    ny, nx, qy, _ = patterns.shape
    start = time.perf_counter()
    rotations = get_sample_reduced_fundamental(resolution=resolution_deg, point_group=phase.point_group)
    generator = SimulationGenerator(beam_energy_kev, precession_angle=precession_angle_deg)
    radius_per_a = float(np.sqrt(2.0) * qy / 2 * calibration_a_inv_per_px)
    sim = generator.calculate_diffraction2d(
        phase,
        rotation=rotations,
        max_excitation_error=max_excitation_error_per_a,
        reciprocal_radius=radius_per_a,
        with_direct_beam=False,
    )
    seconds_library = time.perf_counter() - start

    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        signal = pxm.signals.Diffraction2D(patterns.astype(np.float32))
        signal.calibration.scale = calibration_a_inv_per_px
        signal.calibration.units = "k_A^-1"
        signal.calibration.center = None
        polar = signal.get_azimuthal_integral2d(npt=100, npt_azim=360, inplace=False, mean=True, show_progressbar=False)
        polar = polar.subtract_diffraction_background("radial median", inplace=False, show_progressbar=False)
        polar.data = np.clip(polar.data, 0.0, None)
        match = polar.get_orientation(sim, show_progressbar=False)
        rows = np.asarray(match.data).reshape(ny * nx, -1, 4)[:, 0]
    quats = pyxem_orientations(rows, rotations.data)
    seconds = time.perf_counter() - start
    result = IndexResult(
        quaternions=quats,
        phase_index=np.zeros(ny * nx, dtype=np.int64),
        correlation=rows[:, 1].astype(np.float32),
        reliability=np.zeros(ny * nx, dtype=np.float32),
    )
    return AnchorRun(result, seconds, seconds_library)
