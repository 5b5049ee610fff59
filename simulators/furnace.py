"""Furnace plant (FOPDT + radiation), PID with ramp/soak programmer, thermocouple, pressure (science.md §4).

The control point obeys τ dT/dt = K·u(t − θ)/100 − (T − T_amb) − r·(T_K⁴ − T_amb,K⁴): the linear part
is discretised exactly (zero-order hold, so a step response is K(1 − e^{−(t−θ)/τ}) on the grid), the
radiative term is frozen over a step, and the dead time is a ring buffer of heater powers. A PID
(band in % of span, filtered derivative on the measurement, anti-windup, 0–100 %) regulates the
control thermocouple's reading to the programmer's setpoint. The sample's temperature differs from
the control point by an offset drawn at construction. Deterministic given the rng passed in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from simulators.furnace_config import FurnaceConfig

_KELVIN = 273.15
_NOISE_BLOCK = 4096  # noise is drawn in blocks: same draws whatever the advance() chunking
_DERIVATIVE_N = 8.0  # derivative gain limit: the D term is filtered with time constant Td/N


@dataclass(frozen=True)
class ProgramSegment:
    """One ramp/soak segment: ramp the setpoint linearly to `target_c`, then hold it for `hold_s`."""

    target_c: float
    ramp_c_per_min: float
    hold_s: float

    def __post_init__(self) -> None:
        _check_segment(self)


@dataclass(frozen=True)
class FurnaceFaults:
    """Injected faults, all off by default; times are seconds after program start. Faults latch."""

    thermocouple_open_at_s: float | None = None
    heater_failure_at_s: float | None = None
    overshoot_k: float = 0.0


@dataclass(frozen=True)
class FurnaceTrace:
    """What really happened to the sample (hidden truth), on the plant's integration grid."""

    time_s: np.ndarray
    sample_temperature_c: np.ndarray
    pressure_mpa: np.ndarray
    setpoint_c: np.ndarray


def _check_segment(segment: ProgramSegment) -> None:
    values = (segment.target_c, segment.ramp_c_per_min, segment.hold_s)
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"furnace segment has a non-finite value: {segment}")
    if segment.ramp_c_per_min <= 0:
        raise ValueError(f"furnace segment ramp must be > 0 °C/min, got {segment.ramp_c_per_min}")
    if segment.hold_s < 0:
        raise ValueError(f"furnace segment hold must be >= 0 s, got {segment.hold_s}")


class FurnacePlant:
    """One furnace of one route: plant, thermocouple, PID, programmer, pressure.

    Safety behaviour is deliberately that of a bare controller without break detection: when the
    control thermocouple opens, the PID holds its last output, so the furnace drifts towards whatever
    temperature that power sustains — possibly far above the dwell. Cutting power is the device
    layer's interlock, not the plant's job. A failed heater delivers nothing while the PID output
    (`heater_power_pct`) winds up to 100 %.
    """

    def __init__(
        self,
        config: FurnaceConfig,
        route: str,
        rng: np.random.Generator,
        faults: FurnaceFaults = FurnaceFaults(),
    ) -> None:
        self.config = config
        self.route = route
        self.faults = faults
        self._plant = plant = config.route_plant(route)
        self._rng = rng
        self._dt = plant.step_s
        self._ambient = config.ambient_c
        self._ambient_k4 = (config.ambient_c + _KELVIN) ** 4
        self._decay = math.exp(-plant.step_s / plant.time_constant_s)
        self._tc_decay = math.exp(-plant.step_s / config.thermocouple.lag_s)
        self._kc = 100.0 / (plant.proportional_band_pct / 100.0 * plant.span_k)  # % output per K
        self._n_delay = round(plant.dead_time_s / plant.step_s)
        # Hidden per-furnace truth, drawn once: where the sample sits and how the TC is calibrated.
        magnitude = rng.uniform(plant.sample_offset_min_k, plant.sample_offset_max_k)
        self.sample_offset_k = float(magnitude if plant.sample_hotter else -magnitude)
        self._calibration_fraction = float(rng.uniform(-1.0, 1.0))
        self._noise, self._noise_i = np.empty(0), 0
        self._furnace_c = self._tc_state_c = self._setpoint = config.ambient_c
        self._tc_reading_c = self._pv_prev = self._tc_state_c + self._calibration_error(self._tc_state_c)
        self._delay_buffer, self._delay_i = [0.0] * self._n_delay, 0
        self._tc_open = self._heater_failed = self._heater_enabled = False
        self._manual_output: float | None = None
        self._output = self._integral = self._derivative = 0.0
        self._pressure = self._pressure_target = 0.0
        self._segments: tuple[ProgramSegment, ...] = ()
        self._segment_index = -1
        self._hold_left_s = self._cool_rate_c_per_s = 0.0
        self._ramp_reached = self._cooling = self._done = False
        self._bump_start_s: float | None = None
        self._reset_clock()

    def load_program(self, segments: Sequence[ProgramSegment], pressure_mpa: float) -> None:
        """Run `segments` from the present reading; time and trace restart at 0; pressure ramps to target.

        Then a controlled cool: the setpoint falls at the last ramp rate, capped by the route's cooling
        cap and the plant's natural cooling, and the pressure is vented; `program_done` turns True once
        the sample is at or below `unload_temperature_c` and the pressure is 0.
        """
        segments = tuple(segments)
        if not segments:
            raise ValueError("furnace program needs at least one segment")
        for segment in segments:
            _check_segment(segment)
            if segment.ramp_c_per_min > (limit := self._plant.max_ramp_c_per_min):
                raise ValueError(f"ramp {segment.ramp_c_per_min} °C/min exceeds the {self.route} limit {limit}")
        if not math.isfinite(pressure_mpa) or pressure_mpa < 0:
            raise ValueError(f"pressure must be a finite value >= 0 MPa, got {pressure_mpa}")
        if pressure_mpa > (limit := self._plant.max_pressure_mpa):
            raise ValueError(f"pressure {pressure_mpa} MPa exceeds the {self.route} limit {limit} MPa")
        self._segments, self._segment_index, self._hold_left_s = segments, 0, segments[0].hold_s
        self._ramp_reached = self._cooling = self._done = False
        self._pressure_target = pressure_mpa
        self._heater_enabled, self._manual_output, self._bump_start_s = True, None, None
        # Like a real programmer, start from the present reading (the true temperature if the TC is open).
        reading = self._pv_prev = self._tc_reading_c
        self._setpoint = reading if math.isfinite(reading) else self._furnace_c
        self._integral = self._derivative = 0.0
        self._reset_clock()

    def set_manual_output(self, power_pct: float) -> None:
        """Manual mode (open loop, for step tests and tuning): hold the heater at `power_pct`."""
        if not 0.0 <= power_pct <= 100.0:
            raise ValueError(f"heater power must be within 0–100 %, got {power_pct}")
        self._manual_output = float(power_pct)
        self._heater_enabled = True

    def heater_off(self) -> None:
        """Safe state: heater disabled, setpoint to ambient, pressure vented at its ramp rate.

        The program is abandoned; `program_done` turns True as after a normal cool-down.
        """
        self._heater_enabled = False
        self._manual_output = None
        self._output = self._integral = 0.0
        self._setpoint = self._ambient
        self._pressure_target = 0.0
        if self._segments:
            self._cooling = True
            self._cool_rate_c_per_s = 0.0  # setpoint already at ambient

    def advance(self, dt_s: float) -> None:
        """Integrate `dt_s` more seconds in whole internal steps; the remainder carries to the next call."""
        if not math.isfinite(dt_s) or dt_s < 0:
            raise ValueError(f"advance needs a finite dt >= 0 s, got {dt_s}")
        self._requested_s += dt_s
        target_steps = math.floor(self._requested_s / self._dt + 1e-9)
        for _ in range(target_steps - self._steps):
            self._step()

    @property
    def time_s(self) -> float:
        """Plant time of the last integrated step, seconds since load_program."""
        return self._steps * self._dt

    @property
    def setpoint_c(self) -> float:
        """The programmer's setpoint, as the controller displays it."""
        return self._setpoint

    @property
    def control_tc_c(self) -> float:
        """Control thermocouple reading (lagged, calibration error, noise); NaN when open circuit."""
        return self._tc_reading_c

    @property
    def thermocouple_open(self) -> bool:
        return self._tc_open

    @property
    def sample_temperature_c(self) -> float:
        """Hidden truth: the sample's actual temperature."""
        return self._sample_c(self._furnace_c)

    @property
    def heater_power_pct(self) -> float:
        """Controller output demand, 0–100 % (a failed heater still shows the demand)."""
        return self._output

    @property
    def heater_enabled(self) -> bool:
        return self._heater_enabled

    @property
    def pressure_mpa(self) -> float:
        return self._pressure

    @property
    def pressure_target_mpa(self) -> float:
        return self._pressure_target

    @property
    def program_done(self) -> bool:
        return self._done

    @property
    def segment_index(self) -> int:
        """Current segment; -1 before any program, len(segments) during and after the cool-down."""
        return self._segment_index

    def trace(self) -> FurnaceTrace:
        """The hidden history since load_program (or construction), one entry per internal step."""
        return FurnaceTrace(*np.array(self._history, dtype=float).T.copy())

    def _reset_clock(self) -> None:
        self._steps = 0
        self._requested_s = 0.0
        # rows of (time, sample temperature, pressure, setpoint), the field order of FurnaceTrace
        self._history = [(0.0, self.sample_temperature_c, self._pressure, self._setpoint)]

    def _sample_c(self, furnace_c: float) -> float:
        # The gradient between control TC and sample scales with the rise, so a cold furnace has none.
        rise = furnace_c - self._ambient
        return furnace_c + self.sample_offset_k * min(1.0, max(rise, 0.0) / self.config.offset_full_rise_k)

    def _calibration_error(self, temperature_c: float) -> float:
        tc = self.config.thermocouple
        tolerance = max(tc.calibration_tolerance_k, tc.calibration_tolerance_pct / 100.0 * abs(temperature_c))
        return self._calibration_fraction * tolerance

    def _loss_k(self, temperature_c: float) -> float:
        """Conduction plus radiation losses, as the rise they would hold at steady state."""
        radiation = self._plant.radiation_k_per_k4 * ((temperature_c + _KELVIN) ** 4 - self._ambient_k4)
        return temperature_c - self._ambient + radiation

    def _next_noise(self) -> float:
        if self._noise_i >= self._noise.size:
            self._noise = self._rng.standard_normal(_NOISE_BLOCK) * self.config.thermocouple.noise_sigma_k
            self._noise_i = 0
        value = float(self._noise[self._noise_i])
        self._noise_i += 1
        return value

    def _step(self) -> None:
        dt = self._dt
        t = self._steps * dt
        faults = self.faults
        # Faults latch: a broken wire or a burnt element does not heal when a new program starts.
        self._tc_open |= faults.thermocouple_open_at_s is not None and t >= faults.thermocouple_open_at_s
        self._heater_failed |= faults.heater_failure_at_s is not None and t >= faults.heater_failure_at_s
        self._advance_programmer(t)
        self._update_controller(t)
        power = self._output if self._heater_enabled and not self._heater_failed else 0.0
        if self._n_delay:
            delayed = self._delay_buffer[self._delay_i]
            self._delay_buffer[self._delay_i] = power
            self._delay_i = (self._delay_i + 1) % self._n_delay
        else:
            delayed = power
        # Exact ZOH step of the linear part (radiation frozen over the step).
        plant = self._plant
        drive = plant.gain_k * delayed / 100.0 - self._loss_k(self._furnace_c)
        self._furnace_c = furnace = self._furnace_c + (1.0 - self._decay) * drive
        # Thermocouple: sheath lag on the true temperature, then calibration error and noise. The
        # noise is drawn even when open so the random stream does not depend on faults' timing.
        self._tc_state_c = furnace + self._tc_decay * (self._tc_state_c - furnace)
        noise = self._next_noise()
        if self._tc_open:
            self._tc_reading_c = math.nan
        else:
            self._tc_reading_c = self._tc_state_c + self._calibration_error(self._tc_state_c) + noise
        gap = self._pressure_target - self._pressure
        max_change = plant.pressure_ramp_mpa_per_min / 60.0 * dt
        # Snap onto the target so a vented vessel reads exactly 0, not a rounding residue.
        if abs(gap) <= max_change * (1.0 + 1e-9):
            self._pressure = self._pressure_target
        else:
            self._pressure += math.copysign(max_change, gap)
        self._steps += 1
        sample = self._sample_c(furnace)
        if self._cooling and not self._done:
            self._done = sample <= self.config.unload_temperature_c and self._pressure <= 1e-9
        self._history.append((self._steps * dt, sample, self._pressure, self._setpoint))

    def _advance_programmer(self, t: float) -> None:
        if self._cooling:
            natural = max(self._loss_k(self._setpoint), 0.0) / self._plant.time_constant_s
            rate = min(self._cool_rate_c_per_s, natural)
            self._setpoint = max(self._ambient, self._setpoint - rate * self._dt)
            return
        if self._segment_index < 0:
            return
        segment = self._segments[self._segment_index]
        if not self._ramp_reached:
            step = segment.ramp_c_per_min / 60.0 * self._dt
            gap = segment.target_c - self._setpoint
            if abs(gap) <= step:
                self._setpoint = segment.target_c
                self._ramp_reached = True
                if self._segment_index == 0 and gap > 0 and self.faults.overshoot_k > 0:
                    self._bump_start_s = t
            else:
                self._setpoint += math.copysign(step, gap)
            return
        self._hold_left_s -= self._dt
        if self._hold_left_s > 1e-9:
            return
        self._segment_index += 1
        if self._segment_index < len(self._segments):
            self._ramp_reached = False
            self._hold_left_s = self._segments[self._segment_index].hold_s
            return
        self._cooling = True
        last_rate = min(segment.ramp_c_per_min, self._plant.max_cooling_c_per_min)
        self._cool_rate_c_per_s = last_rate / 60.0
        self._pressure_target = 0.0

    def _working_setpoint(self, t: float) -> float:
        # Overshoot fault: an over-aggressive controller is modelled by its effect — on the first
        # approach to the first dwell its effective target overshoots and relaxes over about τ.
        if self._bump_start_s is None:
            return self._setpoint
        elapsed = t - self._bump_start_s
        return self._setpoint + self.faults.overshoot_k * math.exp(-elapsed / self._plant.time_constant_s)

    def _update_controller(self, t: float) -> None:
        if self._manual_output is not None:
            self._output = self._manual_output
            return
        if not self._heater_enabled:
            self._output = self._integral = 0.0
            return
        pv = self._tc_reading_c
        if not math.isfinite(pv):
            return  # open circuit: no break detection, the output holds (see class docstring)
        plant = self._plant
        dt = self._dt
        error = self._working_setpoint(t) - pv
        proportional = self._kc * error
        td = plant.derivative_time_s
        if td > 0 and math.isfinite(self._pv_prev):
            # Derivative on the measurement (no setpoint kick), filtered so noise is not amplified.
            alpha = td / (td + _DERIVATIVE_N * dt)
            gain = self._kc * _DERIVATIVE_N * alpha
            self._derivative = alpha * self._derivative - gain * (pv - self._pv_prev)
        self._pv_prev = pv
        candidate = self._integral + self._kc * dt / plant.integral_time_s * error
        raw = proportional + candidate + self._derivative
        # Conditional integration: stop integrating into a saturated output (anti-windup).
        if not ((raw > 100.0 and error > 0) or (raw < 0.0 and error < 0)):
            self._integral = min(100.0, max(0.0, candidate))
        self._output = min(100.0, max(0.0, proportional + self._integral + self._derivative))
