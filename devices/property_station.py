"""Property station: magnetisation Jc, Hall-probe trapped field at 5 K, Tc, density and XRD phase fractions.

`set(sample_id)` mounts a sample; `trigger()` runs one measurement pass (cool, field-cool magnetise,
hold, read) and updates the readings. `stop()` ramps the magnet down.
"""

from __future__ import annotations

import threading
from typing import Any

from ophyd import Component as Cpt
from ophyd import EpicsSignal, EpicsSignalRO, Signal
from ophyd.status import DeviceStatus

from devices.base import LabDevice, SimBacked, complete_in_thread
from devices.envelope import LimitError
from simulators.properties import measure
from simulators.sample import ALL_PHASES

MEASUREMENT_S = 2 * 3600.0
"""Cool-down, field-cooled magnetisation and the creep hold: two simulated hours."""
HOLD_H = 0.25


class PropertyStation(LabDevice):
    """What every property-station flavour exposes."""

    trapped_field_t = Cpt(Signal, value=0.0, kind="hinted")
    jc_a_per_cm2 = Cpt(Signal, value=0.0, kind="hinted")
    tc_k = Cpt(Signal, value=0.0, kind="hinted")
    relative_density = Cpt(Signal, value=0.0, kind="hinted")
    # XRD phase fractions, one reading per phase of simulators.sample.ALL_PHASES
    phase_ba122_wt_pct = Cpt(Signal, value=0.0, kind="normal")
    phase_kfe2as2_wt_pct = Cpt(Signal, value=0.0, kind="normal")
    phase_feas_wt_pct = Cpt(Signal, value=0.0, kind="normal")
    phase_fe2as_wt_pct = Cpt(Signal, value=0.0, kind="normal")
    phase_bao_wt_pct = Cpt(Signal, value=0.0, kind="normal")
    phase_wc_wt_pct = Cpt(Signal, value=0.0, kind="normal")
    phase_fe_wt_pct = Cpt(Signal, value=0.0, kind="normal")
    mounted_sample = Cpt(Signal, value="", kind="config")
    magnet_field_t = Cpt(Signal, value=0.0, kind="normal")
    timeout_margin = 3.0
    timeout_slack_wall_s = 30.0

    def set(self, value: str) -> DeviceStatus:  # type: ignore[override]
        if not value:
            raise LimitError(f"{self.name}: sample id must not be empty")
        self.mounted_sample.put(value)
        status = DeviceStatus(self, timeout=5.0)
        status.set_finished()
        return status

    def trigger(self) -> DeviceStatus:
        sample_id = str(self.mounted_sample.get())
        if not sample_id:
            raise LimitError(f"{self.name}: no sample mounted")
        return complete_in_thread(
            self.timed_status(MEASUREMENT_S), lambda: self._measure(sample_id), f"{self.name}-measure"
        )

    def stop(self, *, success: bool = False) -> None:
        """Safe state: magnet ramped to zero."""
        self._magnet_off()

    def _magnet_off(self) -> None:
        self.magnet_field_t.put(0.0)

    def _measure(self, sample_id: str) -> None:
        raise NotImplementedError

    def _publish(self, reading: dict[str, Any]) -> None:
        self.trapped_field_t.put(float(reading["trapped_field_t"]))
        self.jc_a_per_cm2.put(float(reading["jc_a_per_cm2"]))
        self.tc_k.put(float(reading["tc_k"]))
        self.relative_density.put(float(reading["relative_density"]))
        phases = reading["phase_fractions_wt_pct"]
        for name in ALL_PHASES:
            getattr(self, f"phase_{name.lower()}_wt_pct").put(float(phases.get(name, 0.0)))


class SimPropertyStation(SimBacked, PropertyStation):
    """Measures the hidden truth of the lab's samples with the world's instrument noise and glitches."""

    def _measure(self, sample_id: str) -> None:
        truth = self.lab.truth(sample_id).properties
        rng = self.lab.rng("property-station", sample_id)
        glitch = self.lab.world.faults.fires("measurement_glitch", rng)
        self.magnet_field_t.put(5.0)
        self.lab.clock.sleep(MEASUREMENT_S)
        self._publish(measure(self.lab.world, truth, rng, hold_h=HOLD_H, glitch=glitch))
        self.magnet_field_t.put(0.0)


class EpicsPropertyStation(PropertyStation):
    """The same station over EPICS (PV suffixes in docs/devices.md)."""

    trapped_field_t = Cpt(EpicsSignalRO, "TrappedField-RB", kind="hinted")
    jc_a_per_cm2 = Cpt(EpicsSignalRO, "Jc-RB", kind="hinted")
    tc_k = Cpt(EpicsSignalRO, "Tc-RB", kind="hinted")
    relative_density = Cpt(EpicsSignalRO, "Density-RB", kind="hinted")
    phase_ba122_wt_pct = Cpt(EpicsSignalRO, "Phase-Ba122-RB", kind="normal")
    phase_kfe2as2_wt_pct = Cpt(EpicsSignalRO, "Phase-KFe2As2-RB", kind="normal")
    phase_feas_wt_pct = Cpt(EpicsSignalRO, "Phase-FeAs-RB", kind="normal")
    phase_fe2as_wt_pct = Cpt(EpicsSignalRO, "Phase-Fe2As-RB", kind="normal")
    phase_bao_wt_pct = Cpt(EpicsSignalRO, "Phase-BaO-RB", kind="normal")
    phase_wc_wt_pct = Cpt(EpicsSignalRO, "Phase-WC-RB", kind="normal")
    phase_fe_wt_pct = Cpt(EpicsSignalRO, "Phase-Fe-RB", kind="normal")
    mounted_sample = Cpt(EpicsSignal, "SampleId-SP", string=True, kind="config")
    magnet_field_t = Cpt(EpicsSignalRO, "Magnet-RB", kind="normal")
    magnet_off_cmd = Cpt(EpicsSignal, "MagnetOff-Cmd", kind="omitted")
    measure_cmd = Cpt(EpicsSignal, "Measure-Cmd", kind="omitted")
    measure_done = Cpt(EpicsSignalRO, "Measure-Done-RB", kind="omitted")

    def _magnet_off(self) -> None:
        self.magnet_off_cmd.put(1)

    def _measure(self, sample_id: str) -> None:
        done = threading.Event()

        def _cb(value: int, **_: object) -> None:
            if value:
                done.set()

        self.measure_done.subscribe(_cb, run=False)
        try:
            self.measure_cmd.put(1, wait=True)
            if not done.wait(MEASUREMENT_S * 3):
                raise TimeoutError(f"{self.name}: measurement did not finish")
        finally:
            self.measure_done.clear_sub(_cb)
