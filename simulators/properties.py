"""Microstructure → Tc, Jc and trapped field, and the noisy readings of the property station (science.md §2, §5).

Jc(T) = J*·C·F_d·F_GB·F_T, with connectivity C = ((ρ − 0.55)/0.45)^1.7·e^(−f_imp/0.12), pinning
F_d = [1/(1 + d/250 nm)]·[1 − e^(−(d/35 nm)²)], grain-boundary transparency F_GB = ⟨Jc,GB(θ)/Jc,G⟩ over
the misorientation distribution and F_T = (1 − T/Tc)^1.15. The trapped field at the centre of the
mid-plane of a finite cylinder (radius a, half-height h) is B = μ0·Jc(B/2)·h·ln[(a + √(a² + h²))/h]
with Kim's Jc(B) = Jc0/(1 + B/B0), solved in closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import PchipInterpolator

from simulators.kinetics import SinterOutcome
from simulators.orientations import disorientation_deg, gb_transparency, textured_orientations
from simulators.sample import MATRIX_PHASE, SinteredBody
from simulators.world import World

MU0_T_M_PER_A = 4.0e-7 * math.pi
_GB_PAIRS = 50_000


def tc_k(world: World, composition_x: float) -> float:
    """Tc of Ba1−xKxFe2As2 on the world's dome (monotone cubic through its anchors)."""
    p = world.properties
    dome = _dome(p.tc_dome_x, p.tc_dome_k)
    return float(max(0.0, dome(float(np.clip(composition_x, p.tc_dome_x[0], p.tc_dome_x[-1])))))


@lru_cache(maxsize=8)
def _dome(x: tuple[float, ...], tc: tuple[float, ...]) -> PchipInterpolator:
    return PchipInterpolator(np.array(x), np.array(tc))


def gb_factor(world: World, texture_fraction: float) -> float:
    """F_GB: the mean GB transparency over neighbour pairs when a fraction f of grains is textured.

    A pair is random–random with probability (1 − f)², mixed 2f(1 − f), textured–textured f², so
    F_GB(f) = (1 − f)²·A + 2f(1 − f)·B + f²·C with A, B, C estimated once by a large Monte Carlo with a
    fixed seed: smooth in f and the same for every world seed.
    """
    a, b, c = _pair_means(
        world.microstructure.texture_spread_deg,
        world.properties.gb_critical_angle_deg,
        world.properties.gb_decay_angle_deg,
    )
    f = float(np.clip(texture_fraction, 0.0, 1.0))
    return (1 - f) ** 2 * a + 2 * f * (1 - f) * b + f**2 * c


@lru_cache(maxsize=16)
def _pair_means(spread_deg: float, critical_deg: float, decay_deg: float) -> tuple[float, float, float]:
    rng = np.random.default_rng(977)
    random_a, random_b = (textured_orientations(rng, _GB_PAIRS, 0.0, spread_deg) for _ in range(2))
    textured_a, textured_b = (textured_orientations(rng, _GB_PAIRS, 1.0, spread_deg) for _ in range(2))

    def mean(qa: np.ndarray, qb: np.ndarray) -> float:
        return float(np.mean(gb_transparency(disorientation_deg(qa, qb), critical_deg, decay_deg)))

    return mean(random_a, random_b), mean(random_a, textured_b), mean(textured_a, textured_b)


def jc_self_field_a_per_cm2(
    world: World, outcome: SinterOutcome, temperature_k: float, tc: float, f_gb: float
) -> float:
    """Intragranular-limited bulk Jc in self field at `temperature_k`."""
    p = world.properties
    if temperature_k >= tc or outcome.relative_density <= p.connectivity_density_floor:
        return 0.0
    span = 1.0 - p.connectivity_density_floor
    connectivity = ((outcome.relative_density - p.connectivity_density_floor) / span) ** p.connectivity_exponent
    connectivity *= math.exp(-outcome.impurity_fraction / p.impurity_scale)
    d = outcome.grain_size_nm
    pinning = (1.0 / (1.0 + d / p.pinning_size_nm)) * (1.0 - math.exp(-((d / p.coherence_size_nm) ** 2)))
    f_t = (1.0 - temperature_k / tc) ** p.temperature_exponent
    return p.jc_star_a_per_cm2 * connectivity * pinning * f_gb * f_t


def trapped_field_t(world: World, jc0_a_per_cm2: float) -> float:
    """Bean/Kim trapped field at the centre of a finite cylinder, self-consistent in closed form.

    B = G·Jc0/(1 + B/(2·B0)) with G = μ0·h·ln[(a + √(a² + h²))/h] ⇒ B = B0·(√(1 + 2·G·Jc0/B0) − 1).
    """
    p = world.properties
    a = p.sample_diameter_mm / 2.0 * 1e-3
    h = p.sample_thickness_mm / 2.0 * 1e-3
    geometry = MU0_T_M_PER_A * h * math.log((a + math.hypot(a, h)) / h)
    bean = geometry * jc0_a_per_cm2 * 1e4  # A/cm² → A/m²
    b0 = p.kim_b0_t
    return b0 * (math.sqrt(1.0 + 2.0 * bean / b0) - 1.0)


@dataclass(frozen=True)
class TrueProperties:
    """Noiseless properties of a sample (hidden)."""

    tc_k: float
    jc_a_per_cm2: float
    """Self-field Jc at the reference temperature (4.2 K), as a magnetisation measurement reports it."""
    jc_at_measurement_a_per_cm2: float
    trapped_field_t: float
    relative_density: float
    phase_fractions_wt_pct: dict[str, float]
    gb_factor: float


def true_properties(world: World, outcome: SinterOutcome, body: SinteredBody) -> TrueProperties:
    p = world.properties
    tc = tc_k(world, outcome.composition_x)
    f_gb = gb_factor(world, outcome.texture_fraction)
    jc_ref = jc_self_field_a_per_cm2(world, outcome, p.jc_reference_temperature_k, tc, f_gb)
    jc_meas = jc_self_field_a_per_cm2(world, outcome, p.measurement_temperature_k, tc, f_gb)
    return TrueProperties(
        tc_k=tc,
        jc_a_per_cm2=jc_ref,
        jc_at_measurement_a_per_cm2=jc_meas,
        trapped_field_t=trapped_field_t(world, jc_meas),
        relative_density=outcome.relative_density,
        phase_fractions_wt_pct={k: 100.0 * v for k, v in body.phase_fractions.items()},
        gb_factor=f_gb,
    )


def measure(
    world: World, truth: TrueProperties, rng: np.random.Generator, *, hold_h: float = 0.25, glitch: bool = False
) -> dict[str, float | dict[str, float]]:
    """One pass of the property station: magnetisation Jc, Hall-probe trapped field, Tc, density, XRD.

    The trapped field creeps (linear approximation of ~3 %/24 h) during the `hold_h` between field-cooling
    and the reading. A glitch scales the trapped-field and Jc readings (a loose contact or a flux jump).
    """
    n = world.noise
    glitch_scale = world.faults.measurement_glitch_factor if glitch else 1.0
    creep = max(0.0, 1.0 - n.trapped_field_creep_per_24h * hold_h / 24.0)
    trapped = truth.trapped_field_t * creep * (1.0 + n.trapped_field_rel_sigma * rng.standard_normal())
    jc = truth.jc_a_per_cm2 * math.exp(n.jc_lognormal_sigma * rng.standard_normal())
    tc = truth.tc_k + n.tc_sigma_k * rng.standard_normal() if truth.tc_k > 0 else 0.0
    density = truth.relative_density * (1.0 + n.density_rel_sigma * rng.standard_normal())
    phases: dict[str, float] = {}
    for name, wt in truth.phase_fractions_wt_pct.items():
        reading = wt + n.phase_fraction_sigma_wt_pct * rng.standard_normal()
        if name == MATRIX_PHASE or reading >= n.phase_detection_limit_wt_pct:
            phases[name] = round(max(0.0, reading), 2)
    return {
        "trapped_field_t": max(0.0, trapped * glitch_scale),
        "jc_a_per_cm2": jc * glitch_scale,
        "tc_k": max(0.0, tc),
        "relative_density": min(1.0, density),
        "phase_fractions_wt_pct": phases,
    }
