"""Local refinement of near-ambiguous solutions: templates off the library grid, rendered on demand, cached.

On a 1° library a template can sit ~0.5° of tilt and ~0.7° of in-plane angle from the truth; the sub-degree
change of excitation errors moves spot intensities by more than the 0.001–0.02 of correlation that separates
two pseudo-symmetric solutions, so a wrong solution that happens to lie closer to a grid point wins. Here
each competing solution is re-scored at its own optimum: the library template ``O_t`` tilted by small
rotations ``O_t ⊗ Rx(a) ⊗ Ry(b)`` (spots from `kinematics.KinematicSpots`, rendered into the same polar
coefficients) and the in-plane angle found by the FFT correlation, near the solution's angle, with the peak
value interpolated by a parabola. The tilted families depend only on the template, so the points of one
grain share them (an LRU cache).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch

from agents.orientation.kinematics import KinematicSpots
from agents.orientation.misorientation import quaternion_multiply, z_rotation
from agents.orientation.polar import PolarGeometry, coefficient_norms

__all__ = ["LocalRefiner"]


def tilt_offsets(half_width_deg: float, step_deg: float) -> np.ndarray:
    """(n, 4) small rotations Rx(a)·Ry(b) on a square grid of ±`half_width_deg` (identity included)."""
    steps = np.arange(-half_width_deg, half_width_deg + 1e-9, step_deg)
    a, b = (np.deg2rad(x).ravel() for x in np.meshgrid(steps, steps, indexing="ij"))
    rx = np.stack([np.cos(a / 2), np.sin(a / 2), np.zeros_like(a), np.zeros_like(a)], axis=-1)
    ry = np.stack([np.cos(b / 2), np.zeros_like(b), np.sin(b / 2), np.zeros_like(b)], axis=-1)
    return quaternion_multiply(rx, ry)


class LocalRefiner:
    """Re-scores (template, in-plane shift) solutions of one phase at their local optimum."""

    def __init__(
        self,
        geometry: PolarGeometry,
        spots: KinematicSpots,
        template_orientations: np.ndarray,
        calibration_a_inv_per_px: float,
        *,
        half_width_deg: float = 0.75,
        step_deg: float = 0.375,
        window_bins: int = 3,
        cache_size: int = 96,
    ) -> None:
        self.geometry, self.spots = geometry, spots
        self.template_orientations = template_orientations
        self.calibration = calibration_a_inv_per_px
        self.offsets = tilt_offsets(half_width_deg, step_deg)
        self.window_bins = window_bins
        self.cache_size = cache_size
        self._cache: OrderedDict[int, tuple[torch.Tensor, torch.Tensor, np.ndarray]] = OrderedDict()

    def _family(self, template: int) -> tuple[torch.Tensor, torch.Tensor, np.ndarray]:
        """Conjugated coefficients, norms and orientations of the tilted versions of library template `template`."""
        if template in self._cache:
            self._cache.move_to_end(template)
            return self._cache[template]
        quats = quaternion_multiply(self.template_orientations[template][None, :], self.offsets)
        offsets, xy, intensity = self.spots.spots(quats)
        coeffs = self.geometry.render_templates(offsets, xy / self.calibration, np.sqrt(np.clip(intensity, 0.0, None)))
        norms = coefficient_norms(coeffs, self.geometry.n_theta).clamp_min(1e-12)
        entry = (coeffs.conj().contiguous(), norms, quats)
        self._cache[template] = entry
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return entry

    @torch.inference_mode()
    def refine(self, coeffs: torch.Tensor, solutions: list[tuple[int, int]]) -> list[tuple[float, np.ndarray]]:
        """(refined correlation, orientation) of one pattern's solutions, each near its (template, shift)."""
        g = self.geometry
        families = [self._family(template) for template, _ in solutions]
        pattern_norm = coefficient_norms(coeffs[None], g.n_theta).clamp_min(1e-12)
        # (f, k) per family; products first, then one small concatenation (a complex einsum is slower here)
        cross = torch.cat([(f[0] * coeffs).sum(dim=1) for f in families])
        norms = torch.cat([f[1] for f in families])
        corr = (torch.fft.irfft(cross, n=g.n_theta, dim=-1) / (norms[:, None] * pattern_norm)).numpy()
        out, start = [], 0
        for (_, shift), (_, _, quats) in zip(solutions, families, strict=True):
            block = corr[start : start + len(quats)]
            start += len(quats)
            window = (shift + np.arange(-self.window_bins, self.window_bins + 1)) % g.n_theta
            f, j = np.unravel_index(int(block[:, window].argmax()), (len(quats), len(window)))
            k = int(window[j])
            left, mid, right = (float(block[f, (k + d) % g.n_theta]) for d in (-1, 0, 1))
            denom = left - 2.0 * mid + right
            delta = float(np.clip(0.5 * (left - right) / denom, -0.5, 0.5)) if denom < 0 else 0.0
            value = mid - 0.25 * (left - right) * delta  # the parabola's vertex height
            phi = 2.0 * np.pi * (k + delta) / g.n_theta
            out.append((value, quaternion_multiply(quats[f], z_rotation(np.array(-phi)))))
        return out
