"""Crystal orientations of tetragonal (Ba,K)Fe2As2 grains as unit quaternions, numpy only.

Convention (the same as orix's `Orientation`): a quaternion ``q = (w, x, y, z)``, unit norm, ``w ≥ 0``,
is the rotation that takes a vector's coordinates in the sample frame to its coordinates in the crystal
frame, ``v_crystal = q ⊗ v_sample ⊗ q*`` (`quat_rotate`). So ``orix.quaternion.Orientation(q)`` reads
these arrays unchanged, and the crystal axis parallel to the beam (sample z) is ``quat_rotate(q, ẑ)``.
Symmetrically equivalent orientations are ``S ⊗ q`` for S in the crystal's proper point group.
"""

from __future__ import annotations

import numpy as np

_H = float(np.sqrt(0.5))

PROPER_422: np.ndarray = np.array(
    [
        [1.0, 0.0, 0.0, 0.0],  # identity
        [_H, 0.0, 0.0, _H],  # 90° about [001]
        [0.0, 0.0, 0.0, 1.0],  # 180° about [001]
        [_H, 0.0, 0.0, -_H],  # 270° about [001]
        [0.0, 1.0, 0.0, 0.0],  # 180° about [100]
        [0.0, 0.0, 1.0, 0.0],  # 180° about [010]
        [0.0, _H, _H, 0.0],  # 180° about [110]
        [0.0, _H, -_H, 0.0],  # 180° about [1-10]
    ]
)
"""The 8 proper rotations of 4/mmm (Laue class of I4/mmm); inversion does not change a misorientation."""


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product ``a ⊗ b`` of quaternion arrays (..., 4), broadcasting over leading dims."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def quat_conjugate(q: np.ndarray) -> np.ndarray:
    """The inverse rotation of unit quaternions (..., 4)."""
    q = np.asarray(q, dtype=float)
    return q * np.array([1.0, -1.0, -1.0, -1.0])


def canonical(q: np.ndarray) -> np.ndarray:
    """Normalise and flip sign so that w ≥ 0 (q and −q are the same rotation)."""
    q = np.asarray(q, dtype=float)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0.0, -q, q)


def quat_rotate(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors (..., 3) by quaternions (..., 4): ``q ⊗ v ⊗ q*`` (sample → crystal coordinates)."""
    q = np.asarray(q, dtype=float)
    v = np.asarray(v, dtype=float)
    w = q[..., :1]
    u = q[..., 1:]
    # Rodrigues form of q v q*; avoids building the full quaternion product.
    t = 2.0 * np.cross(u, v)
    return v + w * t + np.cross(u, t)


def axis_angle_to_quat(axis: np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """Quaternions (..., 4) for rotations by `angle_rad` about `axis` (..., 3), canonicalised."""
    axis = np.asarray(axis, dtype=float)
    axis = axis / np.linalg.norm(axis, axis=-1, keepdims=True)
    half = 0.5 * np.asarray(angle_rad, dtype=float)[..., None]
    return canonical(np.concatenate([np.cos(half), np.sin(half) * axis], axis=-1))


def random_orientations(rng: np.random.Generator, n: int) -> np.ndarray:
    """`n` orientations uniform on SO(3) (Haar measure): normalised 4-D Gaussian vectors."""
    return canonical(rng.standard_normal((n, 4)))


def textured_orientations(rng: np.random.Generator, n: int, texture_fraction: float, spread_deg: float) -> np.ndarray:
    """`n` orientations of which ``round(n·texture_fraction)`` have the crystal c axis near sample z.

    For a textured grain the angle between c and the pressing axis z is ``|N(0, spread_deg)|`` about a
    random in-plane tilt axis, and the rotation about c is uniform (uniaxial pressing has no in-plane
    preference). The others are uniform on SO(3). Which grains are textured is random.
    """
    q = random_orientations(rng, n)
    n_tex = round(n * float(np.clip(texture_fraction, 0.0, 1.0)))
    if n_tex == 0:
        return q
    idx = rng.choice(n, size=n_tex, replace=False)
    spin = rng.uniform(0.0, 2.0 * np.pi, n_tex)
    tilt = np.abs(rng.normal(0.0, np.deg2rad(spread_deg), n_tex))
    azimuth = rng.uniform(0.0, 2.0 * np.pi, n_tex)
    z_axis = np.broadcast_to([0.0, 0.0, 1.0], (n_tex, 3))
    tilt_axis = np.stack([np.cos(azimuth), np.sin(azimuth), np.zeros(n_tex)], axis=-1)
    # g takes crystal to sample coordinates: spin about c, then tilt c away from z; q is its inverse.
    g = quat_multiply(axis_angle_to_quat(tilt_axis, tilt), axis_angle_to_quat(z_axis, spin))
    q[idx] = canonical(quat_conjugate(g))
    return q


def c_axes_in_sample(q: np.ndarray) -> np.ndarray:
    """Unit vectors (..., 3): the crystal [001] direction expressed in sample coordinates."""
    return quat_rotate(quat_conjugate(q), np.array([0.0, 0.0, 1.0]))


def disorientation_deg(qa: np.ndarray, qb: np.ndarray) -> np.ndarray:
    """Symmetry-reduced misorientation angle (degrees) between orientations, 4/mmm on both sides.

    The misorientation is ``M = qb ⊗ qa*``; with the same group G on both sides the smallest angle of
    ``S_i M S_j`` equals the smallest angle of ``M S`` over S in G (conjugation keeps the angle). The
    angle is taken as 2·atan2(|v|, |w|), which stays accurate near 0°.
    """
    m = quat_multiply(qb, quat_conjugate(qa))
    ms = quat_multiply(m[..., None, :], PROPER_422)
    angles = 2.0 * np.arctan2(np.linalg.norm(ms[..., 1:], axis=-1), np.abs(ms[..., 0]))
    return np.rad2deg(angles.min(axis=-1))


def gb_transparency(theta_deg: np.ndarray | float, critical_deg: float = 9.0, decay_deg: float = 9.0) -> np.ndarray:
    """Jc across a boundary relative to the grain: 1 below θc, exp(−(θ − θc)/θ0) above (science.md §1)."""
    theta = np.asarray(theta_deg, dtype=float)
    return np.exp(-np.clip(theta - critical_deg, 0.0, None) / decay_deg)
