"""Physics of the hidden process model: each law checked against a hand calculation or its defining property."""

from __future__ import annotations

import math

import numpy as np
import pytest

from simulators.kinetics import GAS_CONSTANT_J_PER_MOL_K, rho_max, sinter
from simulators.mill import MillFaults, MillPlant, ideal_powder
from simulators.properties import MU0_T_M_PER_A, tc_k, trapped_field_t
from simulators.truth import evaluate, ideal_profile
from simulators.world import World

WORLD = World()
WEISS = dict(
    mill_rpm=600.0,
    milling_time_h=2.0,
    ball_to_powder_ratio=10.0,
    k_excess=0.03,
    route="hip",
    dwell_temperature_c=600.0,
    dwell_time_h=10.0,
    pressure_mpa=190.0,
    ramp_rate_c_per_min=5.0,
)


def isothermal(temp_c: float, hours: float, n: int = 400) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    t = np.linspace(0.0, hours * 3600.0, n)
    return t, np.full(n, temp_c), np.full(n, 190.0)


def test_dose_follows_cube_of_speed_and_is_30_mj_per_kg_at_reference() -> None:
    ref = ideal_powder(WORLD.mill, 600.0, 1.0, 10.0, 0.0)
    assert ref.dose_mj_per_kg == pytest.approx(30.0)
    double_speed = ideal_powder(WORLD.mill, 400.0, 1.0, 10.0, 0.0)
    assert double_speed.dose_mj_per_kg == pytest.approx(30.0 * (400 / 600) ** 3)
    assert ideal_powder(WORLD.mill, 600.0, 2.0, 20.0, 0.0).dose_mj_per_kg == pytest.approx(120.0)


def test_msr_needs_the_threshold_speed_whatever_the_dose() -> None:
    threshold = WORLD.mill.msr_threshold_rpm
    slow_long = ideal_powder(WORLD.mill, threshold - 10.0, 40.0, 40.0, 0.0)
    assert slow_long.dose_mj_per_kg > 5 * WORLD.mill.msr_activation_dose_mj_per_kg
    assert slow_long.msr_fraction == 0.0
    fast = ideal_powder(WORLD.mill, 650.0, 2.0, 10.0, 0.0)
    assert fast.msr_fraction > 0.5
    too_short = ideal_powder(WORLD.mill, 650.0, 0.25, 5.0, 0.0)
    assert too_short.dose_mj_per_kg < WORLD.mill.msr_activation_dose_mj_per_kg
    assert too_short.msr_fraction == 0.0


def test_amorphous_fraction_and_wear_follow_their_laws() -> None:
    p = ideal_powder(WORLD.mill, 600.0, 4.0, 10.0, 0.0)
    assert p.amorphous_fraction == pytest.approx(0.6 * (1 - math.exp(-120.0 / 120.0)))
    assert p.wear_wt_pct == pytest.approx(0.008 * 120.0)


def test_mill_plant_agrees_with_closed_form_and_is_chunking_independent() -> None:
    def run(chunks: list[float]) -> MillPlant:
        plant = MillPlant(WORLD.mill, np.random.default_rng(1))
        plant.dose_efficiency = 1.0  # compare the physics, not the scatter
        plant.start(600.0, 2 * 3600.0, 10.0, 0.03)
        for dt in chunks:
            plant.advance(dt)
        return plant

    a = run([7.3] * 1200)
    b = run([100.0] * 88)
    assert a.done and b.done
    assert a.powder() == b.powder()
    ideal = ideal_powder(WORLD.mill, 600.0, 2.0, 10.0, 0.03)
    # the plant spins up and down, so it delivers slightly less than the ideal square profile
    assert a.powder().dose_mj_per_kg == pytest.approx(ideal.dose_mj_per_kg, rel=0.02)
    assert a.powder().max_vial_temperature_c == pytest.approx(ideal.max_vial_temperature_c, abs=3.0)


def test_mill_jam_stops_the_dose() -> None:
    plant = MillPlant(WORLD.mill, np.random.default_rng(1), MillFaults(jam_at_s=1800.0))
    plant.start(600.0, 7200.0, 10.0, 0.0)
    plant.advance(7200.0)
    assert plant.jammed and plant.speed_rpm == 0.0
    assert plant.powder().dose_mj_per_kg < 0.3 * 60.0


def test_grain_growth_is_d_cubed_linear_in_time_at_full_density() -> None:
    """Once pores are closed (A saturates), d³ − d0³ grows linearly in time at a rate k·e^(−Q/RT)·A."""
    powder = ideal_powder(WORLD.mill, 600.0, 3.0, 10.0, 0.02)
    k = WORLD.kinetics
    growth = {}
    for hours in (20.0, 40.0):
        out = sinter(k, WORLD.texture, powder, "hip", *isothermal(750.0, hours))
        growth[hours] = out.grain_size_nm**3 - k.initial_grain_size_nm**3
        assert out.relative_density > 0.93
    rate = k.grain_growth_nm3_per_s * math.exp(
        -k.grain_growth_activation_kj_per_mol * 1e3 / (GAS_CONSTANT_J_PER_MOL_K * (750.0 + 273.15))
    )
    full_boost = 1.0 + k.grain_growth_pore_boost
    # the extra 20 h at full density add exactly rate·A·20 h
    assert growth[40.0] - growth[20.0] == pytest.approx(rate * full_boost * 20 * 3600.0, rel=0.01)


def test_an_overshoot_grows_grains() -> None:
    powder = ideal_powder(WORLD.mill, 600.0, 2.0, 10.0, 0.03)
    t, temp, p = ideal_profile(700.0, 2.0, 5.0, 190.0)
    bump = temp + np.where((temp > 690.0), 20.0, 0.0)
    base = sinter(WORLD.kinetics, WORLD.texture, powder, "hip", t, temp, p)
    hot = sinter(WORLD.kinetics, WORLD.texture, powder, "hip", t, bump, p)
    # Q = 300 kJ/mol: +20 K at 700 °C multiplies the growth rate by ~1.8
    assert hot.grain_size_nm**3 - 40.0**3 > 1.5 * (base.grain_size_nm**3 - 40.0**3)


def test_pressure_raises_the_density_ceiling_and_slows_k_loss() -> None:
    assert rho_max(WORLD.kinetics, 0.0) == pytest.approx(0.70)
    assert rho_max(WORLD.kinetics, 190.0) == pytest.approx(0.70 + 0.285 * 190 / 205)
    powder = ideal_powder(WORLD.mill, 600.0, 2.0, 10.0, 0.03)
    t, temp, _ = isothermal(900.0, 2.0)
    vented = sinter(WORLD.kinetics, WORLD.texture, powder, "tube", t, temp, np.zeros_like(t))
    pressed = sinter(WORLD.kinetics, WORLD.texture, powder, "hip", t, temp, np.full_like(t, 190.0))
    assert pressed.relative_density > vented.relative_density
    assert pressed.k_lost < vented.k_lost / 5


def test_tc_dome_peaks_at_optimal_doping() -> None:
    assert tc_k(WORLD, 0.4) == pytest.approx(38.0)
    assert tc_k(WORLD, 0.2) == pytest.approx(25.0)
    assert tc_k(WORLD, 1.0) == pytest.approx(3.4)
    xs = np.linspace(0.05, 0.95, 91)
    tcs = [tc_k(WORLD, x) for x in xs]
    assert xs[int(np.argmax(tcs))] == pytest.approx(0.4, abs=0.011)


def test_bean_trapped_field_by_hand() -> None:
    """Ø10 × 18 mm: G = μ0·h·ln[(a + √(a² + h²))/h]; Kim makes B = B0(√(1 + 2GJc/B0) − 1)."""
    a, h = 5e-3, 9e-3
    geometry = MU0_T_M_PER_A * h * math.log((a + math.hypot(a, h)) / h)
    jc_a_per_m2 = 1e4 * 1e4  # 1e4 A/cm²
    bean = geometry * jc_a_per_m2
    assert bean == pytest.approx(0.5995, rel=1e-3)
    b = trapped_field_t(WORLD, 1e4)
    # the self-consistent answer satisfies B = G·Jc0/(1 + B/(2·B0))
    assert b == pytest.approx(bean / (1 + b / (2 * WORLD.properties.kim_b0_t)), rel=1e-9)
    huge_b0 = WORLD.model_copy(update={"properties": WORLD.properties.model_copy(update={"kim_b0_t": 1e6})})
    assert trapped_field_t(huge_b0, 1e4) == pytest.approx(bean, rel=1e-5)


def test_noiseless_model_is_deterministic_and_fast_enough_to_optimise() -> None:
    a = evaluate(WORLD, **WEISS)
    b = evaluate(WORLD, **WEISS)
    assert a.properties == b.properties


@pytest.mark.parametrize(
    ("change", "direction"),
    [
        ({"dwell_temperature_c": 450.0}, "worse"),  # barely sinters
        ({"mill_rpm": 250.0}, "worse"),  # below the MSR threshold
        ({"k_excess": 0.10}, "worse"),  # K-rich: Tc falls, KFe2As2 appears
        ({"route": "tube", "pressure_mpa": 0.0}, "worse"),  # no pressure: porous
    ],
)
def test_recipe_changes_move_the_field_the_physical_way(change: dict, direction: str) -> None:
    base = evaluate(WORLD, **WEISS).properties.trapped_field_t
    changed = evaluate(WORLD, **{**WEISS, **change}).properties.trapped_field_t
    assert changed < base
