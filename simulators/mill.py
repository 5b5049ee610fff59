"""Planetary ball mill: dose, breakage, MSR ignition, amorphisation, wear and vial heating (science.md §3).

Two views of the same physics: `MillPlant` integrates the rates in time as the instrument runs (with
dose scatter, live vial temperature and faults), and `ideal_powder` gives the noiseless closed form that
the optimum finder uses. Both end in `powder_from_history`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from simulators.world import MillConstants


@dataclass(frozen=True)
class MilledPowder:
    """Hidden state of the powder leaving the jar."""

    dose_mj_per_kg: float
    particle_size_um: float
    msr_fraction: float
    amorphous_fraction: float
    wear_wt_pct: float
    caking_fraction: float
    k_excess: float
    max_vial_temperature_c: float


def power_kw(c: MillConstants, rpm: float, bpr: float) -> float:
    """Dissipated power ∝ Ω³·BPR, normalised to 600 rpm and BPR 10."""
    return c.vial_power_kw_ref * (rpm / 600.0) ** 3 * (bpr / 10.0)


def dose_rate_mj_per_kg_s(c: MillConstants, rpm: float, bpr: float) -> float:
    """D = 30 MJ/kg · (rpm/600)³ · t_h · (BPR/10), per second."""
    return c.dose_mj_per_kg_ref * (rpm / 600.0) ** 3 * (bpr / 10.0) / 3600.0


def steady_vial_rise_c(c: MillConstants, rpm: float, bpr: float, overheat: float = 1.0) -> float:
    """Steady vial temperature rise above ambient.

    Linear in power at first (heating balances Newtonian cooling), saturating at `vial_rise_max_c` as the
    jacket's forced-air and radiative losses grow: R = R_max·tanh(g·P/(k·R_max)). A failed cooling
    (`overheat` > 1) raises both the heating and the ceiling.
    """
    ceiling = c.vial_rise_max_c * overheat
    linear = c.vial_heating_c_per_kw_s * power_kw(c, rpm, bpr) * overheat / c.vial_cooling_per_s
    return ceiling * math.tanh(linear / ceiling)


def powder_from_history(
    c: MillConstants,
    *,
    dose_mj_per_kg: float,
    max_rpm: float,
    caking_c_h: float,
    k_excess: float,
    max_vial_temperature_c: float,
) -> MilledPowder:
    """The powder that a milling history produced.

    Breakage is first order in dose toward the comminution limit; the MSR fires once the dose passes the
    activation dose, but only if the impacts were energetic enough (rpm above the threshold, completing as
    the impact energy grows); amorphous
    fraction f = f_max(1 − e^(−D/D_a)); wear grows linearly with dose; caking integrates the vial's
    excursion above the onset temperature (°C·h).
    """
    d0, dlim = c.particle_size_initial_um, c.particle_size_limit_um
    particle = dlim + (d0 - dlim) * math.exp(-dose_mj_per_kg / c.breakage_dose_mj_per_kg)
    if max_rpm >= c.msr_threshold_rpm and dose_mj_per_kg > c.msr_activation_dose_mj_per_kg:
        excess = dose_mj_per_kg - c.msr_activation_dose_mj_per_kg
        energetic = 1.0 - math.exp(-(max_rpm - c.msr_threshold_rpm) / c.msr_rpm_scale)
        msr = c.msr_reacted_fraction * energetic * (1.0 - math.exp(-excess / c.msr_activation_dose_mj_per_kg))
    else:
        msr = 0.0
    return MilledPowder(
        dose_mj_per_kg=dose_mj_per_kg,
        particle_size_um=particle,
        msr_fraction=msr,
        amorphous_fraction=c.amorphous_max_fraction * (1.0 - math.exp(-dose_mj_per_kg / c.amorphous_dose_mj_per_kg)),
        wear_wt_pct=c.wear_wt_pct_per_mj_per_kg * dose_mj_per_kg,
        caking_fraction=1.0 - math.exp(-c.caking_rate_per_c_h * caking_c_h),
        k_excess=k_excess,
        max_vial_temperature_c=max_vial_temperature_c,
    )


def ideal_powder(c: MillConstants, rpm: float, milling_time_h: float, bpr: float, k_excess: float) -> MilledPowder:
    """Noiseless closed form of a milling run at constant speed."""
    t_s = milling_time_h * 3600.0
    rise = steady_vial_rise_c(c, rpm, bpr)
    k = c.vial_cooling_per_s
    # vial temperature T(t) = T_amb + rise·(1 − e^(−kt)); integrate max(0, T − onset) in closed form
    margin = c.caking_onset_c - c.ambient_c
    caking_c_s = 0.0
    if rise > margin:
        t_on = -math.log(1.0 - margin / rise) / k
        if t_s > t_on:
            caking_c_s = (rise - margin) * (t_s - t_on) - rise / k * (math.exp(-k * t_on) - math.exp(-k * t_s))
    return powder_from_history(
        c,
        dose_mj_per_kg=dose_rate_mj_per_kg_s(c, rpm, bpr) * t_s,
        max_rpm=rpm,
        caking_c_h=caking_c_s / 3600.0,
        k_excess=k_excess,
        max_vial_temperature_c=c.ambient_c + rise * (1.0 - math.exp(-k * t_s)),
    )


@dataclass(frozen=True)
class MillFaults:
    """Faults during one milling run; times in seconds after the start."""

    jam_at_s: float | None = None
    vial_overheat_factor: float = 1.0


class MillPlant:
    """The mill as it runs: speed spin-up, dose delivered with scatter, live vial temperature."""

    spin_up_rpm_per_s = 20.0
    step_s = 5.0

    def __init__(self, constants: MillConstants, rng: np.random.Generator, faults: MillFaults | None = None) -> None:
        self.c = constants
        self.faults = faults or MillFaults()
        # the delivered dose scatters run to run (jar filling, ball wear): one factor per run
        self.dose_efficiency = float(max(0.5, rng.normal(1.0, constants.dose_noise_rel)))
        self.time_s = 0.0
        self.speed_rpm = 0.0
        self.target_rpm = 0.0
        self.duration_s = 0.0
        self.bpr = 10.0
        self.k_excess = 0.0
        self.vial_temperature_c = constants.ambient_c
        self.max_vial_temperature_c = constants.ambient_c
        self.dose_mj_per_kg = 0.0
        self.caking_c_s = 0.0
        self.max_rpm = 0.0
        self.jammed = False
        self._carry_s = 0.0

    def start(self, rpm: float, duration_s: float, bpr: float, k_excess: float) -> None:
        """Begin a run on a fresh charge."""
        self.target_rpm, self.duration_s, self.bpr, self.k_excess = rpm, duration_s, bpr, k_excess
        self.time_s = 0.0

    @property
    def running(self) -> bool:
        return self.target_rpm > 0 and not self.jammed and self.time_s < self.duration_s

    @property
    def done(self) -> bool:
        return self.time_s >= self.duration_s and self.speed_rpm == 0.0

    def stop(self) -> None:
        """Safe state: motor off (the jar spins down)."""
        self.target_rpm = 0.0

    def advance(self, dt_s: float) -> None:
        """Integrate over `dt_s` simulated seconds in whole fixed steps, carrying the remainder.

        Fixed steps make the outcome independent of how the caller chops time (wall-clock ticks); the
        integration stops once the jar has stopped, so a late caller cannot add to the history.
        """
        self._carry_s += dt_s
        while self._carry_s >= self.step_s and not (self.done and self.time_s > 0):
            self._carry_s -= self.step_s
            self._step(self.step_s)

    def _step(self, h: float) -> None:
        c = self.c
        if self.faults.jam_at_s is not None and self.time_s >= self.faults.jam_at_s and self.target_rpm > 0:
            self.jammed = True
        driving = self.running
        target = self.target_rpm if driving else 0.0
        if self.jammed:
            self.speed_rpm = 0.0
        elif self.speed_rpm < target:
            self.speed_rpm = min(target, self.speed_rpm + self.spin_up_rpm_per_s * h)
        else:
            self.speed_rpm = max(target, self.speed_rpm - 3 * self.spin_up_rpm_per_s * h)
        rpm = self.speed_rpm
        self.max_rpm = max(self.max_rpm, rpm)
        self.dose_mj_per_kg += self.dose_efficiency * dose_rate_mj_per_kg_s(c, rpm, self.bpr) * h
        # first-order approach to the (saturating) steady rise of the present speed
        target = steady_vial_rise_c(c, rpm, self.bpr, self.faults.vial_overheat_factor)
        self.vial_temperature_c += c.vial_cooling_per_s * (target - (self.vial_temperature_c - c.ambient_c)) * h
        self.max_vial_temperature_c = max(self.max_vial_temperature_c, self.vial_temperature_c)
        self.caking_c_s += max(0.0, self.vial_temperature_c - c.caking_onset_c) * h
        if driving or rpm > 0:
            self.time_s += h

    def powder(self) -> MilledPowder:
        """The powder as it is now."""
        return powder_from_history(
            self.c,
            dose_mj_per_kg=self.dose_mj_per_kg,
            max_rpm=self.max_rpm,
            caking_c_h=self.caking_c_s / 3600.0,
            k_excess=self.k_excess,
            max_vial_temperature_c=self.max_vial_temperature_c,
        )
