"""Vectorised kinematical spot lists for arbitrary orientations — diffsims' model without its per-rotation loop.

The indexer's local refinement needs templates off the library grid (a few dozen per ambiguous template), and
diffsims' `calculate_diffraction2d` loops over rotations in Python. This reproduces its model for many
orientations at once: reflections within the reciprocal radius rotated by ``~O`` (sample → crystal, orix
`Orientation` convention, as in `templates`), the Ewald-sphere excitation error, diffsims' precession pre-
selection and its Lorentzian precession shape factor (``approximate_precession``, the default), times the
kinematical |F|² that diffsims computes once per reflection. `tests/agents/orientation/test_indexing.py`
compares it with diffsims.
"""

from __future__ import annotations

import numpy as np
from orix.crystal_map import Phase

__all__ = ["KinematicSpots"]


class KinematicSpots:
    """Spots (g_x, g_y in Å⁻¹, intensity) of one phase for batches of orientations."""

    def __init__(
        self,
        phase: Phase,
        *,
        beam_energy_kev: float,
        precession_angle_deg: float,
        reciprocal_radius_per_a: float,
        max_excitation_error_per_a: float,
    ) -> None:
        from diffsims.crystallography._diffracting_vector import DiffractingVector
        from diffsims.generators.simulation_generator import SimulationGenerator
        from diffsims.utils.sim_utils import get_kinematical_intensities

        generator = SimulationGenerator(accelerating_voltage=beam_energy_kev, precession_angle=precession_angle_deg)
        recip = DiffractingVector.from_min_dspacing(
            phase, min_dspacing=1.0 / reciprocal_radius_per_a, include_zero_vector=False
        )
        self.g = np.asarray(recip.data, dtype=np.float64).reshape(-1, 3)  # crystal Cartesian, Å⁻¹
        self.f2 = np.asarray(
            get_kinematical_intensities(
                phase.structure,
                recip.hkl,
                recip.gspacing,
                prefactor=1.0,
                scattering_params=generator.scattering_params,
                debye_waller_factors={},
            ),
            dtype=np.float64,
        ).reshape(-1)
        keep = self.f2 > 1e-12 * max(self.f2.max(initial=0.0), 1e-300)  # extinct reflections never show
        self.g, self.f2 = self.g[keep], self.f2[keep]
        self.wavelength = float(generator.wavelength)
        self.precession_rad = float(np.deg2rad(abs(precession_angle_deg)))
        self.max_excitation = float(max_excitation_error_per_a)

    def spots(self, quaternions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """CSR `offsets` (n + 1,), `xy` (n_spots, 2) Å⁻¹ and `intensity` (n_spots,) of (n, 4) orientations."""
        q = np.asarray(quaternions, dtype=np.float64).reshape(-1, 4)
        rotated = np.einsum("nij,sj->nsi", _matrices(q * np.array([1.0, -1.0, -1.0, -1.0])), self.g)
        r_sphere = 1.0 / self.wavelength
        r_spot = np.hypot(rotated[..., 0], rotated[..., 1])
        z_spot = rotated[..., 2]
        excitation = r_sphere - np.sqrt(np.clip(r_sphere**2 - r_spot**2, 0.0, None)) - z_spot
        s_max = self.max_excitation
        if self.precession_rad == 0.0:
            hit = np.abs(excitation) < s_max
            sigma = np.pi / s_max
            factor = 1.0 / (1.0 + (sigma * excitation) ** 2)  # diffsims' plain Lorentzian
        else:
            p_z, p_t = r_sphere * np.cos(self.precession_rad), r_sphere * np.sin(self.precession_rad)
            up = p_z - np.sqrt(np.clip(r_sphere**2 - (r_spot + p_t) ** 2, 0.0, None))
            down = p_z - np.sqrt(np.clip(r_sphere**2 - (r_spot - p_t) ** 2, 0.0, None))
            hit = (z_spot - s_max <= up) & (z_spot + s_max >= down)
            sigma = np.pi / s_max
            u = sigma**2 * (r_spot**2 * self.precession_rad**2 - excitation**2) + 1.0
            z = np.sqrt(u**2 + 4.0 * sigma**2 * excitation**2)
            factor = (sigma / np.pi) * np.sqrt(2.0 * (u + z) / z**2)
        counts = hit.sum(axis=1)
        offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return offsets, rotated[hit][:, :2], (factor * self.f2[None, :])[hit]


def _matrices(q: np.ndarray) -> np.ndarray:
    """(n, 3, 3) rotation matrices of unit quaternions (w, x, y, z)."""
    w, x, y, z = q.T
    return np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
        ],
        axis=1,
    )
