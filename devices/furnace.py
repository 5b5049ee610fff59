"""Furnace (tube / HIP / SPS): `set(FurnaceProgram)` ramps, soaks, cools; the status ends when it is safe to open.

Device-level interlocks act on the readbacks whatever the plan does: a broken thermocouple, a reading
above setpoint + margin (or the route's absolute maximum), or a heater that stays far below the setpoint
at full power cuts the heater and fails the status.
`stop()` cuts the heater and vents the pressure. Flavours: `SimFurnace` (a `FurnacePlant` of the lab's
world) and `EpicsFurnace` (PVs in docs/devices.md).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
from ophyd import Component as Cpt
from ophyd import EpicsSignal, EpicsSignalRO, Signal
from ophyd.status import DeviceStatus

from devices.base import ProgrammedDevice, SimBacked
from devices.envelope import FURNACE, LimitError, check_range
from devices.sim_loop import SimLoop
from simulators.faults import FaultConfig
from simulators.furnace import FurnaceFaults, FurnacePlant, ProgramSegment
from simulators.lab import SimLab

INTERLOCK_PERIOD_S = 5.0
"""How often (simulated seconds) the sim furnace's interlocks look at the plant."""
NATURAL_COOL_C_PER_MIN = 2.0
"""Slowest cool-down assumed when budgeting a program's time."""


@dataclass(frozen=True)
class FurnaceProgram:
    sample_id: str
    route: str
    dwell_temperature_c: float
    dwell_time_h: float
    ramp_rate_c_per_min: float
    pressure_mpa: float

    def check(self) -> None:
        envelope = FURNACE.route(self.route)
        check_range("dwell temperature", self.dwell_temperature_c, 0.0, envelope.max_temperature_c, "°C")
        check_range("dwell time", self.dwell_time_h, 0.0, FURNACE.max_hold_h, "h")
        check_range(
            f"{self.route} ramp",
            self.ramp_rate_c_per_min,
            envelope.min_ramp_c_per_min,
            envelope.max_ramp_c_per_min,
            "°C/min",
        )
        check_range(f"{self.route} pressure", self.pressure_mpa, 0.0, envelope.max_pressure_mpa, "MPa")

    def expected_duration_s(self, ambient_c: float = 25.0) -> float:
        rise = self.dwell_temperature_c - ambient_c
        cool_rate = max(NATURAL_COOL_C_PER_MIN, min(self.ramp_rate_c_per_min, 10.0))
        return rise / self.ramp_rate_c_per_min * 60.0 + self.dwell_time_h * 3600.0 + rise / cool_rate * 60.0


class Furnace(ProgrammedDevice):
    """What every furnace flavour exposes. `state`: idle, heating, cooling, done, stopped, tripped."""

    FAILED_STATES = frozenset({"tripped", "stopped"})

    temperature_c = Cpt(Signal, value=25.0, kind="hinted")
    setpoint_c = Cpt(Signal, value=25.0, kind="normal")
    heater_power_pct = Cpt(Signal, value=0.0, kind="normal")
    pressure_mpa = Cpt(Signal, value=0.0, kind="normal")
    thermocouple_ok = Cpt(Signal, value=True, kind="normal")
    elapsed_s = Cpt(Signal, value=0.0, kind="normal")
    state = Cpt(Signal, value="idle", kind="normal")
    interlock = Cpt(Signal, value="", kind="normal")
    route = Cpt(Signal, value="", kind="config")
    sample_id = Cpt(Signal, value="", kind="config")

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self._program: FurnaceProgram | None = None
        self._starved_since_s: float | None = None
        self.temperature_c.subscribe(self._check_interlocks, run=False)

    def set(self, value: FurnaceProgram) -> DeviceStatus:  # type: ignore[override]
        """Check the program against the envelope and run it; the status ends when the furnace is safe to open."""
        value.check()
        if self.state.get() in ("heating", "cooling"):
            raise LimitError(f"{self.name} is busy ({self.state.get()}); stop it first")
        status = self.programme_status(value.expected_duration_s())
        self._program = value
        self._starved_since_s = None
        self._start(value)
        return status

    def stop(self, *, success: bool = False) -> None:
        """Safe state: heater off, pressure vented. `success=True` (a RunEngine pause) ends the status normally."""
        if self._running():
            self.end_programme(success=success, reason="stopped")  # first: the reported state must not decide
            self._heater_off()
            self._report("stopped", "")

    def trip(self, reason: str) -> None:
        """The interlock: heater off at once; the status fails with `reason`."""
        if self._running():
            self.end_programme(success=False, reason=reason)
            self._heater_off()
            self._report("tripped", reason)

    def failure_reason(self, state: str) -> str:
        return f"{self.name}: {self.interlock.get() or state}"

    def _running(self) -> bool:
        return self._program is not None and self.state.get() in ("heating", "cooling")

    def _check_interlocks(self, value: float, **_: object) -> None:
        if not self._running():
            return
        reason = self.interlock_reason(
            value, float(self.setpoint_c.get()), float(self.heater_power_pct.get()), float(self.elapsed_s.get())
        )
        if reason:
            self.trip(reason)

    def interlock_reason(self, reading_c: float, setpoint_c: float, power_pct: float, elapsed_s: float) -> str | None:
        """Why the furnace must be made safe now, or None: checked on every reading."""
        program = self._program
        assert program is not None
        limit = FURNACE.route(program.route).max_temperature_c
        if not math.isfinite(reading_c):
            return "thermocouple open circuit"
        if reading_c > limit:
            return f"over-temperature: {reading_c:.1f} °C above the {program.route} limit {limit:.0f} °C"
        if reading_c > setpoint_c + FURNACE.over_temperature_margin_k:
            return (
                f"over-temperature: {reading_c:.1f} °C exceeds setpoint {setpoint_c:.1f} °C "
                f"+ {FURNACE.over_temperature_margin_k:.0f} K"
            )
        if self._heater_starved(reading_c, setpoint_c, power_pct, elapsed_s):
            return (
                f"heater failure: {reading_c:.1f} °C stays {FURNACE.heater_failure_deviation_k:.0f} K below the "
                f"setpoint at full power for {FURNACE.heater_failure_window_s / 60:.0f} min"
            )
        return None

    def _heater_starved(self, reading_c: float, setpoint_c: float, power_pct: float, elapsed_s: float) -> bool:
        """Full power yet far below the setpoint, for longer than the window: the heater delivers nothing."""
        starved = (
            self.state.get() == "heating"
            and power_pct >= 99.0
            and reading_c < setpoint_c - FURNACE.heater_failure_deviation_k
        )
        if not starved:
            self._starved_since_s = None
            return False
        if self._starved_since_s is None:
            self._starved_since_s = elapsed_s
        return elapsed_s - self._starved_since_s > FURNACE.heater_failure_window_s

    def _report(self, state: str, reason: str) -> None:
        """Show a stop or trip decided here (an EPICS controller reports its own state)."""

    def _start(self, program: FurnaceProgram) -> None:
        raise NotImplementedError

    def _heater_off(self) -> None:
        raise NotImplementedError


class SimFurnace(SimBacked, Furnace):
    """A furnace whose three routes are `FurnacePlant`s of the lab's world, advanced by the simulated clock."""

    def __init__(self, *args: object, lab: SimLab, **kwargs: object) -> None:
        self._plant: FurnacePlant | None = None
        self._unrecorded: FurnaceProgram | None = None
        self._since_check_s = 0.0
        self._lock = threading.RLock()  # the sim loop and the RunEngine's stop() both touch the plant
        super().__init__(*args, lab=lab, **kwargs)
        self.loop = SimLoop(self.name, lab.clock, self._advance, self._publish)

    def _start(self, program: FurnaceProgram) -> None:
        self.loop.stop()
        with self._lock:
            self._record()  # an interrupted programme's partial history still happened to its sample
        rng = self.lab.rng("furnace", program.sample_id)
        faults = _draw_furnace_faults(self.lab.world.faults, rng, program.expected_duration_s())
        plant = FurnacePlant(self.lab.world.furnace, program.route, rng, faults)
        plant.load_program(
            [ProgramSegment(program.dwell_temperature_c, program.ramp_rate_c_per_min, program.dwell_time_h * 3600.0)],
            program.pressure_mpa,
        )
        self._plant, self._unrecorded = plant, program
        self._since_check_s = 0.0
        self.interlock.put("")
        self.route.put(program.route)
        self.sample_id.put(program.sample_id)
        self.state.put("heating")
        self.loop.start()

    def _advance(self, dt_s: float) -> None:
        with self._lock:
            self._advance_locked(dt_s)

    def _advance_locked(self, dt_s: float) -> None:
        plant = self._plant
        if plant is None:
            return
        # the interlocks watch every few simulated seconds of programme time, as a controller's would,
        # on a fixed grid so that a trip does not depend on when the wall-clock ticks fell
        remaining = dt_s
        while remaining > 0:
            chunk = min(INTERLOCK_PERIOD_S - self._since_check_s, remaining)
            remaining -= chunk
            plant.advance(chunk)
            self._since_check_s += chunk
            if self._since_check_s < INTERLOCK_PERIOD_S - 1e-9:
                continue
            self._since_check_s = 0.0
            if self._running():
                power = plant.heater_power_pct if plant.heater_enabled else 0.0
                reason = self.interlock_reason(plant.control_tc_c, plant.setpoint_c, power, plant.time_s)
                if reason:
                    self._publish()
                    self.trip(reason)
        state = self.state.get()
        if state == "heating" and plant.segment_index >= 1:  # past the single ramp-and-soak segment
            self.state.put("cooling")
        if plant.program_done and state in ("heating", "cooling", "stopped", "tripped"):
            plant.heater_off()  # a finished programme leaves the heater disabled, not regulating at ambient
            self._record()
            if state in ("heating", "cooling"):
                self.state.put("done")  # before publishing: the interlocks only watch a running programme
            self._publish()
            self.loop.stop()

    def _record(self) -> None:
        """Hand the plant's real history to the hidden lab, once per programme."""
        plant, program = self._plant, self._unrecorded
        if plant is None or program is None:
            return
        self._unrecorded = None
        trace = plant.trace()
        end = _safe_end(trace.sample_temperature_c, trace.pressure_mpa)
        self.lab.record_sintering(
            program.sample_id,
            program.route,
            trace.time_s[:end],
            trace.sample_temperature_c[:end],
            trace.pressure_mpa[:end],
        )

    def _publish(self) -> None:
        plant = self._plant
        if plant is None:
            return
        self.setpoint_c.put(plant.setpoint_c)
        self.heater_power_pct.put(plant.heater_power_pct if plant.heater_enabled else 0.0)
        self.pressure_mpa.put(plant.pressure_mpa)
        self.thermocouple_ok.put(not plant.thermocouple_open)
        self.elapsed_s.put(plant.time_s)
        self.temperature_c.put(plant.control_tc_c)

    def _report(self, state: str, reason: str) -> None:
        self.interlock.put(reason)
        self.state.put(state)

    def _heater_off(self) -> None:
        with self._lock:
            plant = self._plant
            if plant is None:
                return
            plant.heater_off()
            self.heater_power_pct.put(0.0)
            if not self.loop.running:  # keep cooling in simulated time so the history is complete
                self.loop.start()


def _safe_end(temperature_c: np.ndarray, pressure_mpa: np.ndarray) -> int:
    """Index after the first safe point past the peak: the history ends there, however late it was read.

    The sim loop notices the end of a programme only at its next tick; cutting the history at the first
    safe point keeps a sample's truth independent of wall-clock timing.
    """
    if len(temperature_c) == 0:
        return 0
    peak = int(np.argmax(temperature_c))
    safe = np.flatnonzero((temperature_c[peak:] <= FURNACE.safe_temperature_c) & (pressure_mpa[peak:] <= 0.0))
    return peak + int(safe[0]) + 1 if len(safe) else len(temperature_c)


def _draw_furnace_faults(config: FaultConfig, rng: np.random.Generator, duration_s: float) -> FurnaceFaults:
    tc_open = config.fires("thermocouple_open", rng)
    heater = config.fires("heater_failure", rng)
    overshoot = config.fires("overshoot", rng)
    return FurnaceFaults(
        thermocouple_open_at_s=config.onset_fraction(rng) * duration_s if tc_open else None,
        heater_failure_at_s=config.onset_fraction(rng) * duration_s if heater else None,
        overshoot_k=config.overshoot_k if overshoot else 0.0,
    )


class EpicsFurnace(Furnace):
    """The same furnace over EPICS Channel Access (PV suffixes appended to the prefix; see docs/devices.md)."""

    temperature_c = Cpt(EpicsSignalRO, "Temp-RB", kind="hinted")
    setpoint_c = Cpt(EpicsSignalRO, "Temp-SP-RB", kind="normal")
    heater_power_pct = Cpt(EpicsSignalRO, "Power-RB", kind="normal")
    pressure_mpa = Cpt(EpicsSignalRO, "Pressure-RB", kind="normal")
    thermocouple_ok = Cpt(EpicsSignalRO, "TC-OK-RB", kind="normal")
    elapsed_s = Cpt(EpicsSignalRO, "Elapsed-RB", kind="normal")
    state = Cpt(EpicsSignalRO, "State-RB", string=True, kind="normal")
    interlock = Cpt(EpicsSignalRO, "Interlock-RB", string=True, kind="normal")
    route = Cpt(EpicsSignal, "Route-SP", string=True, kind="config")
    sample_id = Cpt(EpicsSignal, "SampleId-SP", string=True, kind="config")
    dwell_temperature_sp = Cpt(EpicsSignal, "Dwell-Temp-SP", kind="omitted")
    dwell_time_sp = Cpt(EpicsSignal, "Dwell-Time-SP", kind="omitted")
    ramp_sp = Cpt(EpicsSignal, "Ramp-SP", kind="omitted")
    pressure_sp = Cpt(EpicsSignal, "Pressure-SP", kind="omitted")
    start_cmd = Cpt(EpicsSignal, "Start-Cmd", kind="omitted")
    heater_off_cmd = Cpt(EpicsSignal, "HeaterOff-Cmd", kind="omitted")

    def _start(self, program: FurnaceProgram) -> None:
        self.route.put(program.route, wait=True)
        self.sample_id.put(program.sample_id, wait=True)
        self.dwell_temperature_sp.put(program.dwell_temperature_c, wait=True)
        self.dwell_time_sp.put(program.dwell_time_h * 3600.0, wait=True)
        self.ramp_sp.put(program.ramp_rate_c_per_min, wait=True)
        self.pressure_sp.put(program.pressure_mpa, wait=True)
        self.start_cmd.put(1)

    def _heater_off(self) -> None:
        self.heater_off_cmd.put(1)
