"""Reaction, K loss, densification, grain growth and impurities, integrated over the actual T(t) (science.md §5).

Every thermally activated rate is integrated over the temperature the sample really saw, so an
unnoticed overshoot or a lagging thermocouple changes the outcome exactly as it would in a real furnace.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.mill import MilledPowder
from simulators.sample import MATRIX_PHASE, SinteredBody
from simulators.world import KineticsConstants, TextureConstants

GAS_CONSTANT_J_PER_MOL_K = 8.314


@dataclass(frozen=True)
class SinterOutcome:
    """Everything the sintering did to the sample (hidden), with the impurity breakdown."""

    reacted_fraction: float
    k_lost: float
    composition_x: float
    relative_density: float
    grain_size_nm: float
    impurity_fraction: float
    impurities: dict[str, float]
    gb_oxide_fraction: float
    texture_fraction: float
    peak_temperature_c: float


def _arrhenius(prefactor: float, activation_kj_per_mol: float, temp_k: np.ndarray) -> np.ndarray:
    return prefactor * np.exp(-activation_kj_per_mol * 1e3 / (GAS_CONSTANT_J_PER_MOL_K * temp_k))


def _cumulative(rate: np.ndarray, time_s: np.ndarray) -> np.ndarray:
    """Cumulative trapezoid integral, starting at 0."""
    out = np.zeros_like(rate)
    out[1:] = np.cumsum(0.5 * (rate[1:] + rate[:-1]) * np.diff(time_s))
    return out


def rho_max(c: KineticsConstants, pressure_mpa: np.ndarray | float) -> np.ndarray | float:
    """Density ceiling under pressure: ρmax = 0.70 + 0.285·P/(P + 15 MPa)."""
    return c.rho_max_base + c.rho_max_pressure_gain * pressure_mpa / (pressure_mpa + c.rho_max_pressure_scale_mpa)


def sinter(
    c: KineticsConstants,
    texture: TextureConstants,
    powder: MilledPowder,
    route: str,
    time_s: np.ndarray,
    temperature_c: np.ndarray,
    pressure_mpa: np.ndarray,
) -> SinterOutcome:
    """Integrate the hidden state of `powder` over a furnace history (arrays on one time grid)."""
    time_s = np.asarray(time_s, dtype=float)
    temp_k = np.asarray(temperature_c, dtype=float) + 273.15
    pressure = np.asarray(pressure_mpa, dtype=float)
    size_ratio = c.reference_particle_um / powder.particle_size_um

    # reaction: dX/dt = k(T)·(d_ref/d_p)²·(1 − X), X(0) = MSR fraction
    reaction_integral = _cumulative(
        _arrhenius(c.reaction_prefactor_per_s, c.reaction_activation_kj_per_mol, temp_k) * size_ratio**2, time_s
    )[-1]
    reacted = 1.0 - (1.0 - powder.msr_fraction) * math.exp(-reaction_integral)

    # K loss: dK/dt = k(T)/(1 + P/P0)·(x_nom − K_lost)
    k_rate = _arrhenius(c.k_loss_prefactor_per_s, c.k_loss_activation_kj_per_mol, temp_k) / (
        1.0 + pressure / c.k_loss_pressure_scale_mpa
    )
    k_lost = c.k_nominal * (1.0 - math.exp(-_cumulative(k_rate, time_s)[-1]))
    composition_x = c.k_nominal + powder.k_excess - k_lost - c.k_offset

    # densification: θ(t) = ∫ e^(−Q/RT)·(d_ref/d_p) dt; ρ = ρ0 + (ρmax − ρ0)(1 − e^(−(θ/θ_ref)^n))
    theta = _cumulative(_arrhenius(1.0, c.densification_activation_kj_per_mol, temp_k) * size_ratio, time_s)
    ceiling = rho_max(c, np.maximum.accumulate(pressure))
    rho_t = c.green_density + (ceiling - c.green_density) * (
        1.0 - np.exp(-((theta / c.densification_theta_ref) ** c.densification_exponent))
    )

    # grain growth: d(d³)/dt = A(ρ)·k_g(T), A rises once pores close
    boost = 1.0 + c.grain_growth_pore_boost / (
        1.0 + np.exp(-(rho_t - c.grain_growth_pore_closure_density) / c.grain_growth_pore_closure_width)
    )
    growth = _cumulative(
        boost * _arrhenius(c.grain_growth_nm3_per_s, c.grain_growth_activation_kj_per_mol, temp_k), time_s
    )[-1]
    grain_nm = (c.initial_grain_size_nm**3 + growth) ** (1.0 / 3.0)

    # GB oxide grows ∝ √(time above the onset); the atmosphere's O2 adds bulk oxide
    hot_h = float(_cumulative((temp_k > c.gb_oxide_onset_c + 273.15).astype(float), time_s)[-1]) / 3600.0
    gb_oxide = c.gb_oxide_per_sqrt_h * math.sqrt(hot_h)
    peak_c = float(temp_k.max() - 273.15)
    amorphous_left = powder.amorphous_fraction * (0.0 if peak_c >= c.amorphous_recrystallisation_c else 1.0)
    off = composition_x - c.k_nominal
    impurities = {
        "unreacted": c.unreacted_weight * (1.0 - reacted),
        "thermal_residual": c.thermal_residual_weight * (reacted - powder.msr_fraction),
        "KFe2As2": c.off_stoichiometry_weight * max(off, 0.0),
        "FeAs": c.off_stoichiometry_weight * max(-off, 0.0),
        "oxide": c.oxide_per_ppm * c.oxygen_ppm,
        "wear": c.wear_weight * powder.wear_wt_pct / 100.0,
        "amorphous": c.amorphous_weight * amorphous_left,
        "gb_oxide": gb_oxide,
        "caking": c.caking_weight * powder.caking_fraction,
    }
    texture_fraction = texture.sps_fraction_per_mpa * float(pressure.max()) if route == "sps" else 0.0
    return SinterOutcome(
        reacted_fraction=reacted,
        k_lost=k_lost,
        composition_x=composition_x,
        relative_density=float(rho_t[-1]),
        grain_size_nm=float(grain_nm),
        impurity_fraction=float(sum(impurities.values())),
        impurities=impurities,
        gb_oxide_fraction=gb_oxide,
        texture_fraction=min(texture_fraction, texture.max_fraction),
        peak_temperature_c=peak_c,
    )


def sintered_body(outcome: SinterOutcome, powder: MilledPowder) -> SinteredBody:
    """What the microscope sees: phase volume fractions of the solid, density, grain size, texture."""
    imp = outcome.impurities
    fractions = {
        "KFe2As2": imp["KFe2As2"] + 0.3 * imp["unreacted"] + 0.3 * imp["thermal_residual"],
        "FeAs": imp["FeAs"] + 0.5 * imp["unreacted"] + 0.7 * imp["thermal_residual"],
        "Fe2As": 0.2 * imp["unreacted"],
        "BaO": imp["oxide"] + imp["caking"] * 0.5,
        "WC": imp["wear"] * 0.6,
        "Fe": imp["wear"] * 0.4,
    }
    total = sum(fractions.values())
    if total > 0.6:  # keep the matrix the majority phase in the picture
        fractions = {k: v * 0.6 / total for k, v in fractions.items()}
    fractions[MATRIX_PHASE] = 1.0 - sum(fractions.values())
    return SinteredBody(
        relative_density=outcome.relative_density,
        grain_size_nm=outcome.grain_size_nm,
        phase_fractions=fractions,
        gb_oxide_fraction=outcome.gb_oxide_fraction,
        composition_x=outcome.composition_x,
        texture_fraction=outcome.texture_fraction,
    )
