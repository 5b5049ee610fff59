"""Grain statistics on drawn maps with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from agents.segmentation.grains import find_grains, grain_map_from_ids, grain_statistics
from agents.segmentation.segmenter import NASA_CLASSES, STEM_CLASSES

MATRIX, BOUNDARY, PORE, SECONDARY = 0, 1, 2, 3


def square_grid(n_cells: int = 8, cell_px: int = 20, line_px: int = 2) -> np.ndarray:
    """n × n square grains of `cell_px` interior separated by boundary lines `line_px` wide."""
    pitch = cell_px + line_px
    side = n_cells * pitch
    grid = np.zeros((side, side), np.uint8)
    for k in range(n_cells):
        grid[k * pitch + cell_px : (k + 1) * pitch, :] = BOUNDARY
        grid[:, k * pitch + cell_px : (k + 1) * pitch] = BOUNDARY
    return grid


def test_a_grid_of_squares_gives_their_count_and_size() -> None:
    grid = square_grid()
    stats = grain_statistics(grid, STEM_CLASSES, pixel_nm=2.0)
    assert stats.grain_count == 64
    # edge rule: the last row/column of cells touches the frame edge through their boundary band
    assert stats.interior_grain_count == 6 * 6
    # each grain owns its 22 × 22 px pitch cell once the boundary pixels are shared out
    pitch_nm = 22 * 2.0
    assert np.median(stats.equivalent_diameters_nm) == pytest.approx(np.sqrt(4 / np.pi) * pitch_nm, rel=0.03)
    # 7 + 7 lines between grains across a 176 px frame; the Cauchy–Crofton factor π/4 assumes isotropic
    # boundaries, so axis-aligned lines read π/4 of their length
    side_um = 8 * pitch_nm / 1e3
    expected_um_inv = 2 * 7 * side_um / side_um**2 * np.pi / 4
    assert stats.boundary_length_per_area_um_inv == pytest.approx(expected_um_inv, rel=0.01)


def test_a_pore_disc_of_known_area_gives_the_porosity() -> None:
    label = np.zeros((200, 200), np.uint8)
    yy, xx = np.mgrid[:200, :200]
    disc = (yy - 100) ** 2 + (xx - 90) ** 2 < 40**2
    label[disc] = PORE
    stats = grain_statistics(label, STEM_CLASSES, pixel_nm=1.0)
    assert stats.porosity == pytest.approx(np.pi * 40**2 / 200**2, rel=0.02)
    assert stats.class_fractions["matrix"] == pytest.approx(1 - stats.porosity)
    assert stats.grain_count == 1 and stats.interior_grain_count == 0  # one grain, touching every edge
    assert stats.boundary_length_per_area_um_inv == 0.0


def test_secondary_phase_grains_are_not_matrix_grains() -> None:
    grid = square_grid(4, 30, 2)
    grid[33:63, 33:63] = SECONDARY  # one whole interior cell is a second phase
    stats = grain_statistics(grid, STEM_CLASSES, 1.0)
    assert stats.grain_count == 15
    assert stats.class_fractions["secondary_phase"] == pytest.approx(900 / grid.size)


def test_a_small_gap_in_a_boundary_does_not_merge_two_grains() -> None:
    grid = square_grid(6, 24, 2)
    grid[30:32, 36:38] = MATRIX  # a 2-px hole in the line between two interior grains
    stats = grain_statistics(grid, STEM_CLASSES, 1.0)
    assert stats.grain_count == 36


def test_specks_are_dropped_and_an_empty_map_has_no_grains() -> None:
    grid = square_grid(4, 30, 2)
    grid[40, 40] = BOUNDARY  # a one-pixel speck of boundary inside a grain changes nothing
    assert grain_statistics(grid, STEM_CLASSES, 1.0).grain_count == 16
    all_pore = np.full((32, 32), PORE, np.uint8)
    stats = grain_statistics(all_pore, STEM_CLASSES, 1.0)
    assert stats.grain_count == 0 and stats.porosity == 1.0 and stats.equivalent_diameters_nm.size == 0


def test_true_grain_ids_give_the_same_answer_as_the_drawn_map() -> None:
    grid = square_grid()
    found = find_grains(grid, STEM_CLASSES)
    from_ids = grain_map_from_ids(found.grains - 1, grid, STEM_CLASSES)
    a = grain_statistics(grid, STEM_CLASSES, 2.0)
    b = grain_statistics(grid, STEM_CLASSES, 2.0, grain_map=from_ids)
    assert a.grain_count == b.grain_count
    np.testing.assert_allclose(np.sort(a.equivalent_diameters_nm), np.sort(b.equivalent_diameters_nm))


def test_classes_without_a_boundary_give_fractions_only() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[:16] = 1
    mask[16:20] = 2
    stats = grain_statistics(mask, NASA_CLASSES, 1.0)
    assert stats.class_fractions["secondary_gamma_prime"] == pytest.approx(0.25)
    assert stats.boundary_length_per_area_um_inv is None and stats.grain_count == 0
