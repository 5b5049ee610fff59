"""Planetary ball mill: `set(MillProgram)` charges the jar and mills; the status ends when the jar stops.

The limits of `devices.envelope.MILL` are checked in `set()` before anything moves; the vial-temperature
interlock stops the motor; `stop()` stops the motor. Flavours: `SimPlanetaryMill` (bound to a
`SimLab`) and `EpicsPlanetaryMill` (PVs in docs/devices.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ophyd import Component as Cpt
from ophyd import EpicsSignal, EpicsSignalRO, Signal
from ophyd.status import DeviceStatus

from devices.base import ProgrammedDevice, SimBacked
from devices.envelope import MILL, check_range
from devices.sim_loop import SimLoop
from simulators.faults import FaultConfig
from simulators.lab import SimLab
from simulators.mill import MillFaults, MillPlant


@dataclass(frozen=True)
class MillProgram:
    sample_id: str
    rpm: float
    duration_h: float
    ball_to_powder_ratio: float
    k_excess: float

    def check(self) -> None:
        check_range("mill speed", self.rpm, MILL.min_rpm, MILL.max_rpm, "rpm")
        check_range("milling time", self.duration_h, 0.0, MILL.max_duration_h, "h")
        check_range("ball-to-powder ratio", self.ball_to_powder_ratio, MILL.min_bpr, MILL.max_bpr, "")
        check_range("K excess", self.k_excess, 0.0, 0.2, "")


class PlanetaryMill(ProgrammedDevice):
    """What every mill flavour exposes. `state`: idle, running, done, stopped, jammed, overtemp."""

    speed_rpm = Cpt(Signal, value=0.0, kind="hinted")
    vial_temperature_c = Cpt(Signal, value=25.0, kind="normal")
    elapsed_s = Cpt(Signal, value=0.0, kind="normal")
    state = Cpt(Signal, value="idle", kind="normal")
    speed_setpoint_rpm = Cpt(Signal, value=0.0, kind="config")
    duration_setpoint_s = Cpt(Signal, value=0.0, kind="config")
    ball_to_powder_ratio = Cpt(Signal, value=10.0, kind="config")
    sample_id = Cpt(Signal, value="", kind="config")

    FAILED_STATES = frozenset({"jammed", "overtemp", "stopped"})

    def set(self, value: MillProgram) -> DeviceStatus:  # type: ignore[override]
        """Check the program against the envelope, start milling; the status ends when the jar stops."""
        value.check()
        status = self.programme_status(value.duration_h * 3600.0)
        self._start(value)
        return status

    def stop(self, *, success: bool = False) -> None:
        """Safe state: motor off. `success=True` (a RunEngine pause or suspension) ends the status normally."""
        self.end_programme(success=success, reason="milling stopped")  # first: a reported "stopped" must not fail it
        self._halt_motor()

    def failure_reason(self, state: str) -> str:
        return f"{self.name}: milling ended in state {state!r}"

    def _start(self, program: MillProgram) -> None:
        raise NotImplementedError

    def _halt_motor(self) -> None:
        raise NotImplementedError


class SimPlanetaryMill(SimBacked, PlanetaryMill):
    """A mill whose jar is a `MillPlant` of the lab's world, advanced by the simulated clock."""

    def __init__(self, *args: object, lab: SimLab, **kwargs: object) -> None:
        super().__init__(*args, lab=lab, **kwargs)
        self._plant: MillPlant | None = None
        self._program: MillProgram | None = None
        self.loop = SimLoop(self.name, lab.clock, self._advance, self._publish)

    def _start(self, program: MillProgram) -> None:
        self.loop.stop()
        rng = self.lab.rng("mill", program.sample_id)
        faults = _draw_mill_faults(self.lab.world.faults, rng, program.duration_h * 3600.0)
        self._plant = MillPlant(self.lab.world.mill, rng, faults)
        self._plant.start(program.rpm, program.duration_h * 3600.0, program.ball_to_powder_ratio, program.k_excess)
        self._program = program
        self.speed_setpoint_rpm.put(program.rpm)
        self.duration_setpoint_s.put(program.duration_h * 3600.0)
        self.ball_to_powder_ratio.put(program.ball_to_powder_ratio)
        self.sample_id.put(program.sample_id)
        self.state.put("running")
        self.loop.start()

    def _advance(self, dt_s: float) -> None:
        plant = self._plant
        if plant is None:
            return
        plant.advance(dt_s)
        if plant.vial_temperature_c > MILL.vial_temperature_limit_c and plant.target_rpm > 0:
            plant.stop()  # the interlock brakes the motor: a hot vial cakes K and can vent
            plant.speed_rpm = 0.0
            self._finish("overtemp")
        elif plant.jammed:
            plant.stop()
            self._finish("jammed")
        elif plant.done and self.state.get() == "running":
            self._finish("done")

    def _finish(self, state: str) -> None:
        plant, program = self._plant, self._program
        if plant is not None and program is not None:
            self.lab.record_milling(program.sample_id, plant.powder())
        self._publish()
        self.state.put(state)
        self.loop.stop()

    def _publish(self) -> None:
        plant = self._plant
        if plant is not None:
            self.speed_rpm.put(plant.speed_rpm)
            self.vial_temperature_c.put(plant.vial_temperature_c)
            self.elapsed_s.put(plant.time_s)

    def _halt_motor(self) -> None:
        plant = self._plant
        if plant is not None and self.state.get() == "running":
            plant.stop()
            plant.speed_rpm = 0.0
            self._finish("stopped")


def _draw_mill_faults(config: FaultConfig, rng: object, duration_s: float) -> MillFaults:
    import numpy as np

    assert isinstance(rng, np.random.Generator)
    jam = config.fires("mill_jam", rng)
    jam_at = config.onset_fraction(rng) * duration_s if jam else None
    hot = config.fires("vial_overtemperature", rng)
    return MillFaults(jam_at_s=jam_at, vial_overheat_factor=config.vial_overheat_factor if hot else 1.0)


class EpicsPlanetaryMill(PlanetaryMill):
    """The same mill over EPICS Channel Access (PV suffixes appended to the prefix; see docs/devices.md)."""

    speed_rpm = Cpt(EpicsSignalRO, "Speed-RB", kind="hinted")
    vial_temperature_c = Cpt(EpicsSignalRO, "VialTemp-RB", kind="normal")
    elapsed_s = Cpt(EpicsSignalRO, "Elapsed-RB", kind="normal")
    state = Cpt(EpicsSignalRO, "State-RB", string=True, kind="normal")
    speed_setpoint_rpm = Cpt(EpicsSignal, "Speed-SP", kind="config")
    duration_setpoint_s = Cpt(EpicsSignal, "Duration-SP", kind="config")
    ball_to_powder_ratio = Cpt(EpicsSignal, "BPR-SP", kind="config")
    sample_id = Cpt(EpicsSignal, "SampleId-SP", string=True, kind="config")
    start_cmd = Cpt(EpicsSignal, "Start-Cmd", kind="omitted")
    stop_cmd = Cpt(EpicsSignal, "Stop-Cmd", kind="omitted")

    def _start(self, program: MillProgram) -> None:
        self.speed_setpoint_rpm.put(program.rpm, wait=True)
        self.duration_setpoint_s.put(math.ceil(program.duration_h * 3600.0), wait=True)
        self.ball_to_powder_ratio.put(program.ball_to_powder_ratio, wait=True)
        self.sample_id.put(program.sample_id, wait=True)
        self.start_cmd.put(1)

    def _halt_motor(self) -> None:
        self.stop_cmd.put(1)
