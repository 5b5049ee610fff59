"""Furnace constants per route (tube, HIP, SPS), thermocouple and controller tuning (science.md §4).

Each route has its own class so that a partial override in a world TOML (`[furnace.sps]
time_constant_s = 50`) keeps that route's other defaults.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

ROUTES = ("tube", "hip", "sps")


class RoutePlant(BaseModel):
    """Plant, programmer and PID constants of one furnace route (defaults: a lab tube furnace)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gain_k: float = Field(1800.0, gt=0, description="rise above ambient at 100 % power, before radiation")
    time_constant_s: float = Field(800.0, gt=0)
    dead_time_s: float = Field(30.0, ge=0)
    radiation_k_per_k4: float = Field(2.0e-10, ge=0, description="rise lost per K⁴ of (T⁴ − T_amb⁴)")
    max_ramp_c_per_min: float = Field(20.0, gt=0, description="fastest programmed ramp the plant accepts")
    max_cooling_c_per_min: float = Field(10.0, gt=0, description="cap of the programmer's controlled cool")
    sample_offset_min_k: float = Field(3.0, ge=0, description="a calibrated lab keeps the sample near the control TC")
    sample_offset_max_k: float = Field(12.0, ge=0)
    sample_hotter: bool = Field(False, description="sample hotter than the control TC (SPS: Joule heating)")
    max_pressure_mpa: float = Field(0.0, ge=0)
    pressure_ramp_mpa_per_min: float = Field(5.0, gt=0)
    step_s: float = Field(1.0, gt=0, description="internal integration step")
    span_k: float = Field(1200.0, gt=0, description="controller input span the proportional band refers to")
    proportional_band_pct: float = Field(8.0, gt=0)
    integral_time_s: float = Field(800.0, gt=0)
    derivative_time_s: float = Field(20.0, ge=0)


class HipPlant(RoutePlant):
    """Hot isostatic press: big pressure vessel, argon convection, slow gas pressurisation."""

    gain_k: float = Field(1900.0, gt=0)
    time_constant_s: float = Field(900.0, gt=0)
    dead_time_s: float = Field(45.0, ge=0)
    max_pressure_mpa: float = Field(200.0, ge=0)
    pressure_ramp_mpa_per_min: float = Field(5.0, gt=0)
    span_k: float = Field(1400.0, gt=0)
    integral_time_s: float = Field(900.0, gt=0)
    derivative_time_s: float = Field(30.0, ge=0)


class SpsPlant(RoutePlant):
    """Spark plasma sintering: direct Joule heating of die and sample, so fast and nearly dead-time free."""

    gain_k: float = Field(2500.0, gt=0)
    time_constant_s: float = Field(60.0, gt=0)
    dead_time_s: float = Field(2.0, ge=0)
    radiation_k_per_k4: float = Field(6.0e-11, ge=0)
    max_ramp_c_per_min: float = Field(300.0, gt=0)
    max_cooling_c_per_min: float = Field(100.0, gt=0)
    sample_hotter: bool = True
    max_pressure_mpa: float = Field(100.0, ge=0)
    pressure_ramp_mpa_per_min: float = Field(20.0, gt=0)
    step_s: float = Field(0.25, gt=0)
    span_k: float = Field(2500.0, gt=0)
    integral_time_s: float = Field(60.0, gt=0)
    derivative_time_s: float = Field(1.0, ge=0)


class ThermocoupleConfig(BaseModel):
    """Type-K control thermocouple: class-2 tolerance, noise, sheath lag."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    noise_sigma_k: float = Field(0.3, ge=0)
    lag_s: float = Field(3.0, gt=0)
    calibration_tolerance_k: float = Field(2.2, ge=0, description="±2.2 K or ±0.75 %, whichever larger")
    calibration_tolerance_pct: float = Field(0.75, ge=0)


class FurnaceConfig(BaseModel):
    """All furnace constants ([M]/[K] in science.md §4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tube: RoutePlant = RoutePlant()
    hip: HipPlant = HipPlant()
    sps: SpsPlant = SpsPlant()
    thermocouple: ThermocoupleConfig = ThermocoupleConfig()
    ambient_c: float = 25.0
    unload_temperature_c: float = Field(100.0, description="the cool-down is done below this")
    offset_full_rise_k: float = Field(300.0, gt=0, description="rise at which the sample offset is full")

    def route_plant(self, route: str) -> RoutePlant:
        """The constants of `route` ("tube", "hip" or "sps")."""
        if route not in ROUTES:
            raise ValueError(f"unknown furnace route {route!r}; expected one of {ROUTES}")
        return getattr(self, route)
