"""The hidden ground truth of the simulated lab: every modelling constant ([M] in science.md) in one config.

A `World` is a pydantic model loadable from TOML. Nothing outside `simulators/` (and the sim backends of
`devices/`) may read it: the controller and the agents see only what the instruments measure.
"""

from __future__ import annotations

import hashlib
import itertools
import tomllib
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from simulators.faults import FaultConfig
from simulators.furnace_config import FurnaceConfig
from simulators.microstructure import MicrostructureConfig
from simulators.sped import SpedConfig
from simulators.stem import StemConfig


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MillConstants(_Section):
    """Planetary mill: dose, breakage, MSR ignition, amorphisation, wear, vial heating (science.md §3)."""

    dose_mj_per_kg_ref: float = Field(30.0, description="dose at 600 rpm, 1 h, BPR 10")
    dose_noise_rel: float = Field(0.10, description="relative scatter of the delivered dose")
    particle_size_initial_um: float = 20.0
    particle_size_limit_um: float = Field(0.12, description="comminution limit of the agglomerated powder")
    breakage_dose_mj_per_kg: float = Field(12.0, description="e-folding dose of first-order breakage")
    msr_threshold_rpm: float = 330.0
    msr_activation_dose_mj_per_kg: float = 20.0
    msr_reacted_fraction: float = Field(0.85, description="122 fraction formed in the jar by the MSR")
    msr_rpm_scale: float = Field(150.0, description="impact energy above threshold that completes the MSR")
    amorphous_max_fraction: float = 0.6
    amorphous_dose_mj_per_kg: float = 120.0
    wear_wt_pct_per_mj_per_kg: float = 0.008
    vial_heating_c_per_kw_s: float = Field(0.9, description="vial warming per kJ dissipated (lumped)")
    vial_cooling_per_s: float = Field(2.0e-3, description="Newtonian cooling rate of the vial")
    vial_rise_max_c: float = Field(200.0, description="ceiling of the vial's rise above ambient (cooled jacket)")
    vial_power_kw_ref: float = Field(0.35, description="power dissipated at 600 rpm, BPR 10")
    ambient_c: float = 25.0
    caking_onset_c: float = Field(130.0, description="vial temperature above which K smears and cakes")
    caking_rate_per_c_h: float = 4.0e-4


class KineticsConstants(_Section):
    """Sintering kinetics integrated over the actual T(t) (science.md §5)."""

    reaction_prefactor_per_s: float = 7.8e8
    reaction_activation_kj_per_mol: float = 200.0
    reference_particle_um: float = 0.3
    k_loss_prefactor_per_s: float = 2.0e5
    k_loss_activation_kj_per_mol: float = 230.0
    k_loss_pressure_scale_mpa: float = 20.0
    k_nominal: float = 0.4
    k_offset: float = Field(0.02, description="K lost during handling and milling")
    densification_activation_kj_per_mol: float = 250.0
    densification_theta_ref: float = 3.0e-11
    densification_exponent: float = 0.6
    green_density: float = 0.60
    rho_max_base: float = 0.70
    rho_max_pressure_gain: float = 0.285
    rho_max_pressure_scale_mpa: float = 15.0
    grain_growth_nm3_per_s: float = 4.4e19
    grain_growth_activation_kj_per_mol: float = 300.0
    grain_growth_pore_boost: float = 1.5
    grain_growth_pore_closure_density: float = 0.92
    grain_growth_pore_closure_width: float = 0.01
    initial_grain_size_nm: float = Field(40.0, description="crystallite size after milling to the nano limit")
    amorphous_recrystallisation_c: float = 450.0
    gb_oxide_per_sqrt_h: float = Field(0.008, description="GB oxide fraction per √(hours above 500 °C)")
    gb_oxide_onset_c: float = 500.0
    oxygen_ppm: float = Field(5.0, description="furnace atmosphere O2 (nuisance)")
    oxide_per_ppm: float = 4.0e-4
    unreacted_weight: float = Field(1.0, description="impurity per unit unreacted fraction")
    thermal_residual_weight: float = Field(
        0.08, description="FeAs/K-rich remnants per unit of 122 formed thermally instead of by the MSR"
    )
    off_stoichiometry_weight: float = Field(1.5, description="K-rich / K-poor phases per unit |x − 0.4|")
    wear_weight: float = Field(1.0, description="impurity per unit wear mass fraction")
    amorphous_weight: float = Field(0.5, description="impurity per unit amorphous fraction left unrecrystallised")
    caking_weight: float = Field(1.0, description="impurity per unit caked fraction")


class TextureConstants(_Section):
    """Uniaxial pressing (SPS) aligns c axes with the pressing direction; HIP and tube do not."""

    sps_fraction_per_mpa: float = 0.001
    max_fraction: float = 0.6


class PropertyConstants(_Section):
    """Microstructure → Tc, Jc, trapped field (science.md §2 and §5)."""

    tc_dome_x: tuple[float, ...] = Field(
        (0.0, 0.1, 0.2, 0.3, 0.4, 0.55, 0.7, 0.85, 1.0), description="K content x of the Tc(x) dome anchors"
    )
    tc_dome_k: tuple[float, ...] = Field(
        (0.0, 3.0, 25.0, 34.5, 38.0, 34.0, 25.0, 13.0, 3.4), description="Tc at each anchor (monotone cubic between)"
    )
    jc_star_a_per_cm2: float = Field(1.0e7, description="intragrain scale; calibrated with F_GB of random texture")
    connectivity_density_floor: float = 0.55
    connectivity_exponent: float = 1.7
    impurity_scale: float = 0.12
    pinning_size_nm: float = 250.0
    coherence_size_nm: float = 35.0
    gb_critical_angle_deg: float = 9.0
    gb_decay_angle_deg: float = 9.0
    temperature_exponent: float = 1.15
    kim_b0_t: float = 0.8
    kim_b0_temperature_slope: float = Field(0.0, description="B0 change per K away from 5 K")
    sample_diameter_mm: float = 10.0
    sample_thickness_mm: float = 18.0
    measurement_temperature_k: float = 5.0
    jc_reference_temperature_k: float = 4.2

    @model_validator(mode="after")
    def _dome_is_a_function(self) -> PropertyConstants:
        x = self.tc_dome_x
        if len(x) != len(self.tc_dome_k) or len(x) < 2:
            raise ValueError("tc_dome_x and tc_dome_k need the same number (≥ 2) of anchors")
        if any(b <= a for a, b in itertools.pairwise(x)):
            raise ValueError("tc_dome_x must increase strictly")
        return self


class MeasurementNoise(_Section):
    """Instrument noise of the property station (science.md §5)."""

    jc_lognormal_sigma: float = 0.08
    trapped_field_rel_sigma: float = 0.025
    trapped_field_creep_per_24h: float = 0.03
    tc_sigma_k: float = 0.3
    density_rel_sigma: float = 0.005
    phase_fraction_sigma_wt_pct: float = 2.0
    phase_detection_limit_wt_pct: float = 3.0


class World(_Section):
    """A complete hidden ground truth. `seed` makes every random draw reproducible."""

    name: str = "default"
    seed: int = 20240601
    time_acceleration: float = Field(1.0e5, gt=0, description="simulated seconds per wall second")
    mill: MillConstants = MillConstants()
    kinetics: KineticsConstants = KineticsConstants()
    texture: TextureConstants = TextureConstants()
    properties: PropertyConstants = PropertyConstants()
    noise: MeasurementNoise = MeasurementNoise()
    furnace: FurnaceConfig = FurnaceConfig()
    microstructure: MicrostructureConfig = MicrostructureConfig()
    stem: StemConfig = StemConfig()
    sped: SpedConfig = SpedConfig()
    faults: FaultConfig = FaultConfig()

    def rng(self, *stream: str | int) -> np.random.Generator:
        """A generator seeded from the world seed and a stream name, so draws never depend on call order."""
        digest = hashlib.sha256("/".join(map(str, (self.seed, *stream))).encode()).digest()
        return np.random.default_rng(int.from_bytes(digest[:8], "little"))

    def with_seed(self, seed: int) -> World:
        return self.model_copy(update={"seed": seed})


def load_world(path: str | Path | None = None) -> World:
    """Load a world from TOML; `None` gives the default world."""
    if path is None:
        return World()
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"world file not found: {path}")
    with path.open("rb") as fh:
        return World.model_validate(tomllib.load(fh))
