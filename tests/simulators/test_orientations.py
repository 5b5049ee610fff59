"""Orientation utilities: group structure, sampling statistics and agreement with orix."""

from __future__ import annotations

import numpy as np
import pytest
from orix.quaternion import Orientation
from orix.quaternion.symmetry import D4h
from orix.vector import Vector3d

from simulators.orientations import (
    PROPER_422,
    c_axes_in_sample,
    canonical,
    disorientation_deg,
    gb_transparency,
    quat_multiply,
    quat_rotate,
    random_orientations,
    textured_orientations,
)


def _same_rotation(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(abs(abs(float(np.dot(a, b))) - 1.0) < 1e-12)


def test_proper_422_is_a_closed_group_of_unit_quaternions_with_w_nonnegative() -> None:
    assert PROPER_422.shape == (8, 4)
    np.testing.assert_allclose(np.linalg.norm(PROPER_422, axis=1), 1.0)
    assert np.all(PROPER_422[:, 0] >= 0.0)
    for a in PROPER_422:
        for b in PROPER_422:
            product = quat_multiply(a, b)
            assert any(_same_rotation(product, s) for s in PROPER_422)
    # It keeps the tetragonal c axis on its line and maps a to ±a or ±b.
    c = quat_rotate(PROPER_422, np.array([0.0, 0.0, 1.0]))
    np.testing.assert_allclose(np.abs(c[:, 2]), 1.0, atol=1e-12)


def test_random_orientations_are_uniform_on_so3() -> None:
    q = random_orientations(np.random.default_rng(0), 40000)
    assert q.shape == (40000, 4)
    np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0)
    assert np.all(q[:, 0] >= 0.0)
    # Haar measure: any rotated axis is uniform on the sphere, so its z component is uniform on [−1, 1].
    z = c_axes_in_sample(q)[:, 2]
    hist, _ = np.histogram(z, bins=10, range=(-1.0, 1.0))
    assert np.all(np.abs(hist / len(z) - 0.1) < 0.01)
    # Rotation angle ω has density (1 − cos ω)/π: mean ω = π/2 + 2/π.
    omega = 2.0 * np.arccos(np.clip(q[:, 0], -1.0, 1.0))
    assert abs(omega.mean() - (np.pi / 2 + 2 / np.pi)) < 0.01


def test_textured_orientations_put_c_near_the_pressing_axis_with_free_spin() -> None:
    rng = np.random.default_rng(1)
    spread = 10.0
    q = textured_orientations(rng, 20000, texture_fraction=0.6, spread_deg=spread)
    tilt = np.degrees(np.arccos(np.clip(np.abs(c_axes_in_sample(q)[:, 2]), 0.0, 1.0)))
    within = np.mean(tilt < 2.0 * spread)
    # 0.6 · P(|N(0, σ)| < 2σ) + 0.4 · P(random c within 20° of ±z)
    expected = 0.6 * 0.9545 + 0.4 * (1.0 - np.cos(np.radians(20.0)))
    assert abs(within - expected) < 0.015
    # Textured grains spin freely about c: the crystal a axis' azimuth in the sample is uniform mod 90°.
    textured = tilt < 5.0
    a_axis = quat_rotate(canonical(q[textured] * np.array([1, -1, -1, -1])), np.array([1.0, 0.0, 0.0]))
    azimuth = np.degrees(np.arctan2(a_axis[:, 1], a_axis[:, 0])) % 90.0
    hist, _ = np.histogram(azimuth, bins=6, range=(0.0, 90.0))
    assert hist.min() > 0.8 * hist.mean()


def test_untextured_and_fully_textured_limits() -> None:
    rng = np.random.default_rng(2)
    none = textured_orientations(rng, 5000, 0.0, 15.0)
    assert np.mean(np.abs(c_axes_in_sample(none)[:, 2]) > np.cos(np.radians(30))) < 0.2
    full = textured_orientations(rng, 5000, 1.0, 5.0)
    assert np.mean(np.abs(c_axes_in_sample(full)[:, 2]) > np.cos(np.radians(20))) > 0.99


def test_disorientation_is_zero_between_symmetry_equivalents_and_bounded() -> None:
    rng = np.random.default_rng(3)
    q = random_orientations(rng, 200)
    for s in PROPER_422:
        equivalent = canonical(quat_multiply(s, q))
        np.testing.assert_allclose(disorientation_deg(q, equivalent), 0.0, atol=1e-6)
    angles = disorientation_deg(q, random_orientations(rng, 200))
    assert angles.max() <= 98.43  # largest disorientation for 422 (Mackenzie)
    # Broadcasting over leading dimensions.
    assert disorientation_deg(q[:5, None, :], q[None, :7, :]).shape == (5, 7)


def test_disorientation_matches_orix() -> None:
    rng = np.random.default_rng(4)
    qa, qb = random_orientations(rng, 3000), textured_orientations(rng, 3000, 0.5, 10.0)
    ours = disorientation_deg(qa, qb)
    oa = Orientation(qa, symmetry=D4h)
    ob = Orientation(qb, symmetry=D4h)
    np.testing.assert_allclose(ours, oa.angle_with(ob, degrees=True), atol=1e-6)
    np.testing.assert_allclose(ours, np.degrees((ob - oa).angle), atol=1e-6)


def test_quaternion_convention_is_orix_sample_to_crystal() -> None:
    q = random_orientations(np.random.default_rng(5), 50)
    orix_beam = (Orientation(q) * Vector3d.zvector()).data
    np.testing.assert_allclose(quat_rotate(q, np.array([0.0, 0.0, 1.0])), orix_beam, atol=1e-12)


def test_gb_transparency_is_flat_then_exponential() -> None:
    theta = np.array([0.0, 5.0, 9.0, 18.0, 27.0])
    expected = np.array([1.0, 1.0, 1.0, np.exp(-1.0), np.exp(-2.0)])
    np.testing.assert_allclose(gb_transparency(theta), expected)
    assert gb_transparency(20.0, critical_deg=10.0, decay_deg=5.0) == pytest.approx(np.exp(-2.0))
