"""Symmetry-reduced misorientation angles and CSL tests on plain quaternion arrays, vectorised.

Conventions (those of orix, checked against `orix.quaternion.Misorientation.reduce()` in the tests):

- a quaternion is (w, x, y, z), an orientation `o` maps the sample frame onto the crystal frame, so the
  crystal symmetry acts on the left: `o` and `s ⊗ o` (s in the phase's proper point group) are the same
  orientation;
- the misorientation from a to b is `m = o_b ⊗ o_a⁻¹`; its equivalents are `s_b ⊗ m ⊗ s_a`.

The rotation angle of a quaternion q is 2·arccos|q_w|, and (p⊗q)_w = ⟨p̄, q⟩ (p̄ the conjugate), so the
smallest angle over the equivalents is a maximum of |dot products| — a matrix product, no loops:

- same symmetry G on both sides: angle(s_b ⊗ m ⊗ s_a) = angle(s_a ⊗ s_b ⊗ m) (the angle is invariant under
  conjugation), so the disorientation angle is 2·arccos max_{s∈G} |⟨s̄, m⟩|;
- two different groups: 2·arccos max_{s_b, s_a} |⟨s̄_b, m ⊗ s_a⟩| (|G_a|·|G_b| products per boundary);
- the deviation of m from a reference misorientation r (e.g. Σ3) is min over the equivalents e of r of
  angle(ē ⊗ m) = 2·arccos max_e |⟨e, m⟩|.
"""

from __future__ import annotations

import numpy as np

from simulators.orientations import quat_multiply as quaternion_multiply

SIGMA3_ANGLE_DEG = 60.0
SIGMA3_AXIS = (1.0, 1.0, 1.0)
BRANDON_CONSTANT_DEG = 15.0


def z_rotation(angle_rad: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) of rotations by `angle_rad` about z (the beam)."""
    half = 0.5 * np.asarray(angle_rad, dtype=float)
    zeros = np.zeros_like(half)
    return np.stack([np.cos(half), zeros, zeros, np.sin(half)], axis=-1)


def conjugate(q: np.ndarray) -> np.ndarray:
    """The inverse of unit quaternions (..., 4)."""
    return np.asarray(q, dtype=float) * np.array([1.0, -1.0, -1.0, -1.0])


def misorientation(q_a: np.ndarray, q_b: np.ndarray) -> np.ndarray:
    """m = o_b ⊗ o_a⁻¹ for (N, 4) orientation quaternions: the rotation from crystal a to crystal b."""
    return quaternion_multiply(q_b, conjugate(q_a))


def _angle_deg(cos_half: np.ndarray) -> np.ndarray:
    return np.degrees(2.0 * np.arccos(np.clip(cos_half, 0.0, 1.0)))


def disorientation_angle_deg(m: np.ndarray, symmetry: np.ndarray, symmetry_b: np.ndarray | None = None) -> np.ndarray:
    """Smallest rotation angle (degrees) among the symmetric equivalents of misorientations m (N, 4).

    `symmetry` are the (K, 4) quaternions of phase a's proper point group; `symmetry_b` those of phase b's
    when it differs (an interphase boundary).
    """
    m = np.asarray(m, dtype=float).reshape(-1, 4)
    sym_a = np.asarray(symmetry, dtype=float).reshape(-1, 4)
    if symmetry_b is None or _same_group(sym_a, np.asarray(symmetry_b, dtype=float).reshape(-1, 4)):
        return _angle_deg(np.abs(m @ conjugate(sym_a).T).max(axis=1))
    sym_b = np.asarray(symmetry_b, dtype=float).reshape(-1, 4)
    m_sa = quaternion_multiply(m[:, None, :], sym_a[None, :, :])  # (N, Ka, 4)
    return _angle_deg(np.abs(m_sa @ conjugate(sym_b).T).max(axis=(1, 2)))


def axis_angle_quaternion(axis: tuple[float, float, float], angle_deg: float) -> np.ndarray:
    """The unit quaternion of a rotation by `angle_deg` about `axis`."""
    u = np.asarray(axis, dtype=float)
    u = u / np.linalg.norm(u)
    half = np.radians(angle_deg) / 2.0
    return np.concatenate([[np.cos(half)], np.sin(half) * u])


def symmetric_equivalents(q: np.ndarray, symmetry: np.ndarray) -> np.ndarray:
    """All distinct s_i ⊗ q ⊗ s_j (up to sign) of one misorientation q under the proper point group."""
    sym = np.asarray(symmetry, dtype=float).reshape(-1, 4)
    eq = quaternion_multiply(quaternion_multiply(sym[:, None, :], np.asarray(q, dtype=float)), sym[None, :, :])
    eq = eq.reshape(-1, 4)
    eq = eq * np.where(eq[:, :1] < 0, -1.0, 1.0)  # q and −q are the same rotation
    _, first = np.unique(np.round(eq, 9), axis=0, return_index=True)
    return eq[np.sort(first)]


def deviation_from_deg(m: np.ndarray, reference: np.ndarray, symmetry: np.ndarray) -> np.ndarray:
    """Smallest angle (degrees) between misorientations m (N, 4) and any equivalent of `reference` (4,)."""
    equivalents = symmetric_equivalents(reference, symmetry)
    m = np.asarray(m, dtype=float).reshape(-1, 4)
    return _angle_deg(np.abs(m @ equivalents.T).max(axis=1))


def brandon_tolerance_deg(sigma: int) -> float:
    """Brandon's criterion: a boundary is Σn when within 15°/√n of the ideal CSL misorientation."""
    return BRANDON_CONSTANT_DEG / float(np.sqrt(sigma))


def is_sigma3(m: np.ndarray, symmetry: np.ndarray) -> np.ndarray:
    """Whether misorientations m (N, 4) of a cubic phase are Σ3 twins (60° about ⟨111⟩, Brandon 8.66°)."""
    sigma3 = axis_angle_quaternion(SIGMA3_AXIS, SIGMA3_ANGLE_DEG)
    return deviation_from_deg(m, sigma3, symmetry) <= brandon_tolerance_deg(3)


def _same_group(a: np.ndarray, b: np.ndarray) -> bool:
    if a.shape != b.shape:
        return False
    # same set of rotations up to sign and order
    return bool(np.all(np.abs(a @ b.T).max(axis=1) > 1.0 - 1e-9))
