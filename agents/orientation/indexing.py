"""Fast template-matching orientation indexer for SPED patterns, streaming in chunks.

Per pattern (all batched in torch, see `polar`): angular Fourier coefficients P̂ on polar rings, then

1. **rotation-invariant pre-filter** — ``Σ_{i,m} c_m |T̂_im| |P̂_im| / (‖T‖‖P‖)`` bounds the normalised
   correlation of every template over all in-plane angles from above; one real matrix product against the
   whole library (every phase) keeps the `n_candidates` best templates;
2. **exact in-plane search** — for those only, the full circular cross-correlation over φ by one inverse
   FFT, normalised (a cosine similarity in [−1, 1]); parabolic interpolation refines φ below a bin;
3. the orientation is ``O = O_t ⊗ Rz(−φ)``: the pattern is template t rotated by +φ about the beam;
4. **local refinement** of near-ambiguous points (reliability < `refine_below`): the `refine_solutions` best
   mutually distinct solutions are re-scored at their local optimum off the library grid (`refinement`), so a pseudo-
   symmetric solution that merely lies closer to a grid point no longer wins;
5. with whole scan rows (`RowStream`), each point also scores the solutions of its left, right and upper
   neighbours (candidate propagation), which the pre-filter can miss for dense near-zone-axis patterns.

Conventions: quaternions (w, x, y, z) in orix's `Orientation` convention (sample → crystal, the one of
`simulators.orientations` and `simulators.sped`), w ≥ 0. Reliability is ``1 − C₂/C₁`` with C₂ the best
correlation of a solution more than `distinct_deg` away from the best (another phase always counts).
Points whose best correlation, ring means left out, is below `min_correlation` (pores, dead frames, amorphous)
are not indexed: phase index −1, identity orientation.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, fields

import numpy as np
import torch

from agents.orientation.kinematics import KinematicSpots
from agents.orientation.misorientation import quaternion_multiply, z_rotation
from agents.orientation.phases import load_phase
from agents.orientation.polar import PolarGeometry, coefficient_norms
from agents.orientation.refinement import LocalRefiner
from agents.orientation.templates import TemplateLibrary, get_library

__all__ = ["IndexResult", "OrientationIndexer"]

NOT_INDEXED = -1


@dataclass(frozen=True)
class IndexResult:
    """Per-pattern results, aligned with the input order."""

    quaternions: np.ndarray  # (N, 4) float64, orix Orientation convention
    phase_index: np.ndarray  # (N,) int64 into the indexer's phases, −1 = not indexed
    correlation: np.ndarray  # (N,) float32 normalised correlation of the best match
    reliability: np.ndarray  # (N,) float32 1 − second-best / best (distinct solutions)

    def __len__(self) -> int:
        return len(self.phase_index)

    @classmethod
    def concatenate(cls, results: Sequence[IndexResult]) -> IndexResult:
        if not results:
            return cls(np.zeros((0, 4)), np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros(0, np.float32))
        return cls(*(np.concatenate([getattr(r, f.name) for r in results]) for f in fields(cls)))


SIMILAR_NEIGHBOUR = 0.35
"""Plain (unrotated) correlation of the azimuthal structure above which a neighbour counts as the same grain."""


def _structure_unit(coeffs: torch.Tensor) -> torch.Tensor:
    """Angular frequencies ≥ 1 scaled to unit norm: ring means (a pore's noise floor) do not make patterns alike."""
    structure = coeffs[..., 1:]
    norms = torch.sqrt((structure.real**2 + structure.imag**2).sum(dim=(-2, -1))).clamp_min(1e-6)
    return structure / norms[:, None, None]


def _neighbour_average(coeffs: torch.Tensor, previous: torch.Tensor | None, n_theta: int) -> torch.Tensor:
    """Mean of each row pattern with its similar left, right and upper neighbours (coefficients in, out).

    `coeffs` and `previous` may carry the decision coefficients stacked behind the search ones along a last
    axis of 2 (…, 2); similarity is judged on the search coefficients and both are averaged alike.
    """
    with torch.inference_mode():
        stacked = coeffs.ndim == 4
        search = coeffs[..., 0] if stacked else coeffs
        unit = _structure_unit(search)
        total, count = coeffs.clone(), torch.ones(len(coeffs))
        shape = (-1, 1, 1, 1) if stacked else (-1, 1, 1)

        def add(mask: torch.Tensor, other: torch.Tensor, sel: slice, src: slice) -> None:
            other_search = other[..., 0] if stacked else other
            sim = (unit[sel].conj() * _structure_unit(other_search[src])).real.sum(dim=(-2, -1))
            keep = (sim > SIMILAR_NEIGHBOUR).float() * mask
            total[sel] += keep.reshape(shape) * other[src]
            count[sel] += keep

        ones = torch.ones(len(coeffs) - 1)
        if len(coeffs) > 1:
            add(ones, coeffs, slice(1, None), slice(None, -1))
            add(ones, coeffs, slice(None, -1), slice(1, None))
        if previous is not None and previous.shape == coeffs.shape:
            add(torch.ones(len(coeffs)), previous, slice(None), slice(None))
        return total / count.reshape(shape)


class RowStream:
    """Whole scan rows of one scan, in scan order, indexed as they arrive (`OrientationIndexer.index_stream`).

    Each pattern is averaged with the look-alike patterns of its left, right and upper neighbours, and scores
    their solutions too; only the previous row (coefficients and solutions) is kept. A row that does not
    follow the previous one (`push(rows, first_row=...)`) is indexed without an upper neighbour.
    """

    def __init__(self, indexer: OrientationIndexer) -> None:
        self.indexer = indexer
        self.previous: torch.Tensor | None = None
        self.previous_templates: np.ndarray | None = None
        self.next_row: int | None = None

    def push(self, rows: np.ndarray, first_row: int | None = None) -> IndexResult:
        """Index (nx, qy, qx) or (rows, nx, qy, qx) patterns; `first_row` is the scan row of the first."""
        rows = np.asarray(rows)
        rows = rows.reshape(-1, *rows.shape[-3:])
        if first_row is not None and first_row != self.next_row:
            self.previous, self.previous_templates = None, None
        parts = []
        for row in rows:
            coeffs = self.indexer._both_coefficients(row)
            averaged = _neighbour_average(coeffs, self.previous, self.indexer.geometry.n_theta)
            parts.append(self._match_row(averaged[..., 0], averaged[..., 1]))
            self.previous = coeffs
        self.next_row = None if first_row is None else first_row + len(rows)
        return IndexResult.concatenate(parts)

    def _match_row(self, coeffs: torch.Tensor, decision: torch.Tensor) -> IndexResult:
        """Match one row, then let each point also score its neighbours' solutions (candidate propagation).

        The rotation-invariant pre-filter can miss the right template of a whole grain (dense near-zone-axis
        patterns); a single point that found it hands it to its right/left neighbours and to the next row.
        Each point still picks by its own correlation, so boundaries stay where the patterns put them.
        """
        n = len(coeffs)
        columns = np.arange(n)
        extra = None
        if self.previous_templates is not None and len(self.previous_templates) == n:
            up = self.previous_templates[np.clip(columns[:, None] + np.array([-1, 0, 1]), 0, n - 1)]
            extra = torch.from_numpy(up)
        result, chosen, candidates = self.indexer._match_detail(n, coeffs, extra=extra, decision=decision)
        if n > 1:
            sides = chosen[np.clip(columns[:, None] + np.array([-1, 1]), 0, n - 1)]
            redo = np.flatnonzero(((sides >= 0) & (sides != chosen[:, None])).any(axis=1))
            if len(redo):
                fallback = candidates[redo, :1].numpy()
                side = np.where(sides[redo] >= 0, sides[redo], fallback)
                again, again_chosen, _ = self.indexer._match_detail(
                    len(redo),
                    coeffs[redo],
                    extra=torch.from_numpy(side),
                    candidates=candidates[redo],
                    decision=decision[redo],
                )
                result = _replace(result, redo, again)
                chosen[redo] = again_chosen
        self.previous_templates = np.where(chosen >= 0, chosen, candidates[:, 0].numpy())
        return result


def _replace(result: IndexResult, index: np.ndarray, other: IndexResult) -> IndexResult:
    """`result` with the entries at `index` taken from `other`."""
    arrays = []
    for f in fields(IndexResult):
        values = getattr(result, f.name).copy()
        values[index] = getattr(other, f.name)
        arrays.append(values)
    return IndexResult(*arrays)


class OrientationIndexer:
    """Template matching of (N, qy, qx) patterns against the libraries of `phases` (names or CIF paths).

    The libraries come from the disk cache (`templates.get_library`) and are rendered once into the polar
    geometry of this detector; `index` then runs in chunks of `batch_size`, so memory stays bounded.
    """

    def __init__(
        self,
        phases: Sequence[str],
        calibration_a_inv_per_px: float,
        pattern_px: int,
        *,
        resolution_deg: float = 1.0,
        beam_energy_kev: float = 200.0,
        precession_angle_deg: float = 0.5,
        center_px: float | None = None,
        max_excitation_error_per_a: float = 0.02,
        r_min_a_inv: float = 0.1,
        n_candidates: int = 24,
        min_correlation: float = 0.2,
        distinct_deg: float = 5.0,
        batch_size: int = 128,
        num_threads: int = 2,
        refine_below: float = 0.05,
        refine_solutions: int = 6,
    ) -> None:
        if not phases:
            raise ValueError("at least one phase is needed")
        if calibration_a_inv_per_px <= 0 or not np.isfinite(calibration_a_inv_per_px):
            raise ValueError("calibration_a_inv_per_px must be a positive number")
        torch.set_num_threads(max(1, min(num_threads, torch.get_num_threads())))
        self.phase_objects = [load_phase(p) for p in phases]
        self.phase_names = [p.name for p in self.phase_objects]
        self.calibration_a_inv_per_px = float(calibration_a_inv_per_px)
        self.pattern_px = int(pattern_px)
        center = (self.pattern_px - 1) / 2.0 if center_px is None else float(center_px)
        r_max = min(center, self.pattern_px - 1 - center) - 1.0
        r_min = max(3.0, r_min_a_inv / self.calibration_a_inv_per_px)
        if r_max - r_min < 8.0:
            raise ValueError("patterns too small (or calibration too coarse) for polar template matching")
        self.geometry = PolarGeometry(self.pattern_px, center, r_min, r_max)
        self.transform = self.geometry.transformer()
        self.n_candidates, self.min_correlation, self.batch_size = n_candidates, min_correlation, batch_size
        self.distinct_deg = distinct_deg
        self.refine_below, self.refine_solutions = refine_below, refine_solutions
        radius_per_a = (r_max + 3.0 * self.geometry.template_sigma_px) * self.calibration_a_inv_per_px
        self.libraries: list[TemplateLibrary] = [
            get_library(
                p,
                resolution_deg=resolution_deg,
                beam_energy_kev=beam_energy_kev,
                precession_angle_deg=precession_angle_deg,
                reciprocal_radius_per_a=radius_per_a,
                max_excitation_error_per_a=max_excitation_error_per_a,
            )
            for p in self.phase_objects
        ]
        self._build_bank()
        self._refiners: list[LocalRefiner | None] = [None] * len(self.libraries)
        self._refine_args = {
            "beam_energy_kev": beam_energy_kev,
            "precession_angle_deg": precession_angle_deg,
            "reciprocal_radius_per_a": radius_per_a,
            "max_excitation_error_per_a": max_excitation_error_per_a,
        }

    def _build_bank(self) -> None:
        """Render every library into one bank of template coefficients, with pre-filter features and norms."""
        coefficients, phase_of, orientations = [], [], []
        for i, lib in enumerate(self.libraries):
            xy_px = lib.spot_xy_per_a / self.calibration_a_inv_per_px
            amplitude = np.sqrt(np.clip(lib.spot_intensity, 0.0, None))
            coefficients.append(self.geometry.render_templates(lib.offsets, xy_px, amplitude))
            phase_of.append(np.full(lib.size, i))
            orientations.append(lib.orientations)
        self.bank = torch.cat(coefficients)  # (n_templates, n_rings, n_freq) complex64
        self.bank_phase = np.concatenate(phase_of)
        self.bank_start = np.concatenate([[0], np.cumsum([lib.size for lib in self.libraries])])
        self.bank_orientations = np.concatenate(orientations)
        norms = coefficient_norms(self.bank, self.geometry.n_theta)
        self.bank_norms = torch.where(norms > 0, norms, torch.ones_like(norms))
        self.bank_features = self._features(self.bank) / self.bank_norms[:, None]  # (n_templates, n_rings·n_freq)

    def _features(self, coefficients: torch.Tensor) -> torch.Tensor:
        factor = torch.full((self.geometry.n_freq,), 2.0)
        factor[0] = 1.0
        return (coefficients.abs() * torch.sqrt(factor / self.geometry.n_theta)).reshape(coefficients.shape[0], -1)

    # -- indexing ------------------------------------------------------------------------------------------

    def index(self, patterns: np.ndarray) -> IndexResult:
        """Index (N, qy, qx) patterns (any real dtype; one 2-D pattern is accepted too)."""
        patterns = np.asarray(patterns)
        if patterns.ndim == 2:
            patterns = patterns[None]
        if patterns.ndim != 3 or patterns.shape[1:] != (self.pattern_px, self.pattern_px):
            raise ValueError(f"expected (N, {self.pattern_px}, {self.pattern_px}) patterns, got {patterns.shape}")
        parts = [self._index_batch(patterns[s : s + self.batch_size]) for s in range(0, len(patterns), self.batch_size)]
        return IndexResult.concatenate(parts)

    def index_stream(self, chunks: Iterable[np.ndarray], *, scan_rows: bool = False) -> Iterator[IndexResult]:
        """Index chunks (rows, event pages) as they arrive; yields one result per chunk, in order.

        With `scan_rows`, every chunk is whole scan rows, (nx, qy, qx) or (rows, nx, qy, qx), in scan order:
        each pattern is then averaged with those of its 4-neighbours (the previous row is kept, nothing
        more) that look alike — a plain-correlation threshold, so grain boundaries stay sharp — before
        matching. That cuts the Poisson noise that decides between near-identical templates.
        """
        rows = RowStream(self)
        for chunk in chunks:
            chunk = np.asarray(chunk)
            yield rows.push(chunk) if scan_rows else self.index(chunk.reshape(-1, *chunk.shape[-2:]))

    @torch.inference_mode()
    def _coefficients(self, patterns: np.ndarray) -> torch.Tensor:
        return self.transform(torch.from_numpy(np.ascontiguousarray(patterns)))

    @torch.inference_mode()
    def _both_coefficients(self, patterns: np.ndarray) -> torch.Tensor:
        """Search and decision coefficients (`polar.PatternTransform.decision`) stacked on a last axis of 2."""
        tensor = torch.from_numpy(np.ascontiguousarray(patterns))
        return torch.stack([self.transform(tensor), self.transform.decision(tensor)], dim=-1)

    def _index_batch(self, patterns: np.ndarray) -> IndexResult:
        both = self._both_coefficients(patterns)
        return self._match_detail(len(patterns), both[..., 0], decision=both[..., 1])[0]

    def _match(self, n: int, coeffs: torch.Tensor, decision: torch.Tensor | None = None) -> IndexResult:
        return self._match_detail(n, coeffs, decision=decision)[0]

    @torch.inference_mode()
    def _match_detail(
        self,
        n: int,
        coeffs: torch.Tensor,
        extra: torch.Tensor | None = None,
        candidates: torch.Tensor | None = None,
        decision: torch.Tensor | None = None,
    ) -> tuple[IndexResult, np.ndarray, torch.Tensor]:
        """Match `n` patterns; `extra` (n, E) templates are scored besides the pre-filter's (or `candidates`').

        Near-ambiguous points are refined and decided on `decision` coefficients (default: `coeffs`).

        Returns the result, the chosen template of each pattern (−1 if not indexed) and the candidates scored.
        """
        g = self.geometry
        norms = coefficient_norms(coeffs, g.n_theta)
        empty = norms <= 1e-6
        safe_norms = torch.where(empty, torch.ones_like(norms), norms)
        if candidates is None:
            features = self._features(coeffs) / safe_norms[:, None]
            bound = features @ self.bank_features.T  # (B, n_templates) upper bounds of the correlation
            n_cand = min(self.n_candidates, self.bank.shape[0])
            candidates = torch.topk(bound, n_cand, dim=1).indices  # (B, M)
        if extra is not None:
            candidates = torch.cat([candidates, extra.to(candidates.dtype)], dim=1)

        cross = torch.einsum("bmrk,brk->bmk", self.bank[candidates].conj(), coeffs)
        corr = torch.fft.irfft(cross, n=g.n_theta, dim=-1)  # (B, M, n_theta)
        corr = corr / (self.bank_norms[candidates][..., None] * safe_norms[:, None, None])
        peak, shift = corr.max(dim=-1)  # (B, M)
        best = peak.argmax(dim=1)
        rows = torch.arange(n)
        best_curve = corr[rows, best]  # (B, n_theta)
        best_shift = shift[rows, best]

        # Sub-bin in-plane angle: parabola through the peak and its two circular neighbours.
        left = best_curve[rows, (best_shift - 1) % g.n_theta]
        mid = best_curve[rows, best_shift]
        right = best_curve[rows, (best_shift + 1) % g.n_theta]
        denom = left - 2.0 * mid + right
        delta = torch.where(denom < 0, 0.5 * (left - right) / denom, torch.zeros_like(denom)).clamp(-0.5, 0.5)
        phi = 2.0 * np.pi * (best_shift.double() + delta.double()) / g.n_theta

        template = candidates[rows, best].numpy()
        quats = quaternion_multiply(self.bank_orientations[template], z_rotation(-phi.numpy()))
        quats = np.where(quats[:, :1] < 0, -quats, quats)
        reliability, table = self._reliability(
            candidates.numpy(), peak.numpy(), shift.numpy(), best.numpy(), best_curve, quats
        )
        shaky = np.flatnonzero((reliability < self.refine_below) & (mid.numpy() >= self.min_correlation))
        for p in shaky:
            columns = self._solutions(p, table, self.refine_solutions)
            if len(columns) < 2:
                continue
            judged = coeffs[p] if decision is None else decision[p]
            scored = self._refine(judged, [(int(table[0][p, j]), int(table[1][p, j])) for j in columns])
            order = sorted(range(len(scored)), key=lambda i: -scored[i][0])
            top, runner_up = scored[order[0]], scored[order[1]]
            chosen = columns[order[0]]
            template[p] = table[0][p, chosen]
            quats[p] = top[1] if top[1][0] >= 0 else -top[1]
            if chosen != columns[0]:  # the correlation stays on the search coefficients' scale
                mid[p] = float(table[2][p, chosen])
            reliability[p] = np.clip(1.0 - max(runner_up[0], 0.0) / top[0], 0.0, 1.0) if top[0] > 0 else 0.0

        correlation = mid.numpy().astype(np.float32)
        structured = self._structured_correlation(coeffs, norms, template, mid * self.bank_norms[template] * safe_norms)
        phase_index = self.bank_phase[template].astype(np.int64)
        lost = empty.numpy() | (structured < self.min_correlation)
        phase_index[lost] = NOT_INDEXED
        quats[lost] = (1.0, 0.0, 0.0, 0.0)
        reliability[lost] = 0.0
        correlation[empty.numpy()] = 0.0
        chosen = np.where(lost, NOT_INDEXED, template).astype(np.int64)
        return IndexResult(quats, phase_index, correlation, reliability), chosen, candidates

    def _structured_correlation(
        self, coeffs: torch.Tensor, norms: torch.Tensor, template: np.ndarray, raw_peak: torch.Tensor
    ) -> np.ndarray:
        """The best match's correlation without the rings' mean (angular frequency 0), for rejecting pores.

        What the ring medians leave of a pore's halo, direct-beam tail or noise is rotation-invariant; its ring
        means correlate a little with any template's, its azimuthal structure does not. Spots are structure.
        """
        n_theta = self.geometry.n_theta
        t0 = self.bank[template, :, 0]
        p0 = coeffs[:, :, 0]
        mean_term = (t0.conj() * p0).real.sum(-1) / n_theta
        t_norm = (self.bank_norms[template] ** 2 - (t0.abs() ** 2).sum(-1) / n_theta).clamp_min(0.0).sqrt()
        p_norm = (norms**2 - (p0.abs() ** 2).sum(-1) / n_theta).clamp_min(0.0).sqrt()
        value = (raw_peak - mean_term) / (t_norm * p_norm).clamp_min(1e-12)
        return torch.where(p_norm > 1e-6, value, torch.zeros_like(value)).numpy()

    def _reliability(
        self,
        candidates: np.ndarray,
        peak: np.ndarray,
        shift: np.ndarray,
        best: np.ndarray,
        best_curve: torch.Tensor,
        quats: np.ndarray,
    ) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
        """1 − C₂/C₁ over candidate solutions (each template's best φ, and the best template's best φ ≥ 5° away)."""
        g = self.geometry
        n, m = candidates.shape
        rows = np.arange(n)
        # The best template's strongest peak outside ±distinct_deg of its best angle (e.g. the 180° twin).
        window = int(np.ceil(self.distinct_deg / 360.0 * g.n_theta))
        offsets = (np.arange(g.n_theta)[None, :] - shift[rows, best][:, None]) % g.n_theta
        outside = torch.from_numpy((offsets > window) & (offsets < g.n_theta - window))
        masked = torch.where(outside, best_curve, torch.full_like(best_curve, -np.inf))
        alt_peak, alt_shift = (t.numpy() for t in masked.max(dim=-1))

        all_templates = np.concatenate([candidates, candidates[rows, best][:, None]], axis=1)
        all_shifts = np.concatenate([shift, alt_shift[:, None]], axis=1)
        all_peaks = np.concatenate([peak, alt_peak[:, None]], axis=1)
        phi = 2.0 * np.pi * all_shifts / g.n_theta
        cand_quats = quaternion_multiply(self.bank_orientations[all_templates], z_rotation(-phi))  # (n, m+1, 4)
        # Disorientation to the best: m = q_c ⊗ q_best⁻¹; angle = 2·acos max_s |⟨s, m⟩| over the phase's group.
        inverse = quats * np.array([1.0, -1.0, -1.0, -1.0])
        mis = quaternion_multiply(cand_quats, inverse[:, None, :])
        best_phase = self.bank_phase[all_templates[:, -1]]
        cos_half = np.zeros((n, m + 1))
        for i, lib in enumerate(self.libraries):
            sel = best_phase == i
            if sel.any():
                cos_half[sel] = np.abs(mis[sel] @ lib.symmetry.T).max(axis=-1)
        angle = np.degrees(2.0 * np.arccos(np.clip(cos_half, 0.0, 1.0)))
        distinct = (angle > self.distinct_deg) | (self.bank_phase[all_templates] != best_phase[:, None])
        distinct_peaks = np.where(distinct, all_peaks, -np.inf)
        second = distinct_peaks.max(axis=1)
        first = peak[rows, best]
        with np.errstate(divide="ignore", invalid="ignore"):
            rel = np.where(first > 0, 1.0 - np.clip(second, 0.0, None) / first, 0.0)
        return np.clip(rel, 0.0, 1.0).astype(np.float32), (all_templates, all_shifts, all_peaks, cand_quats)

    def _solutions(self, p: int, table: tuple[np.ndarray, ...], k: int) -> list[int]:
        """Columns of the `k` best mutually distinct candidate solutions of pattern `p` (distinct: other phase
        or more than `distinct_deg` apart)."""
        templates, _, peaks, quats = table
        order = np.argsort(-peaks[p])
        order = order[np.isfinite(peaks[p, order])]
        q = quats[p, order]
        phases = self.bank_phase[templates[p, order]]
        mis = quaternion_multiply(q[:, None, :], (q * np.array([1.0, -1.0, -1.0, -1.0]))[None, :, :])
        cos_half = np.zeros(mis.shape[:2])
        for i, lib in enumerate(self.libraries):
            rows = phases == i
            if rows.any():
                cos_half[rows] = np.abs(mis[rows] @ lib.symmetry.T).max(axis=-1)
        alike = (np.degrees(2.0 * np.arccos(np.clip(cos_half, 0.0, 1.0))) <= self.distinct_deg) & (
            phases[:, None] == phases[None, :]
        )
        picked: list[int] = []
        for i in range(len(order)):
            if not any(alike[i, j] for j in picked):
                picked.append(i)
                if len(picked) == k:
                    break
        return [int(order[i]) for i in picked]

    def _refine(self, coeffs: torch.Tensor, solutions: list[tuple[int, int]]) -> list[tuple[float, np.ndarray]]:
        """Correlations and orientations of (template, in-plane shift) solutions at their local optima."""
        phases = {int(self.bank_phase[t]) for t, _ in solutions}
        if len(phases) > 1:  # one refiner per phase; mixed-phase ambiguities are scored phase by phase
            return [self._refine(coeffs, [solution])[0] for solution in solutions]
        phase = phases.pop()
        refiner = self._refiners[phase]
        if refiner is None:
            spots = KinematicSpots(self.phase_objects[phase], **self._refine_args)
            refiner = LocalRefiner(
                self.geometry, spots, self.libraries[phase].orientations, self.calibration_a_inv_per_px
            )
            self._refiners[phase] = refiner
        return refiner.refine(coeffs, [(t - int(self.bank_start[phase]), sh) for t, sh in solutions])
