"""The mill enforces its envelope, finishes with the jar, times out when hung, and stops safely."""

from __future__ import annotations

import pytest
from ophyd.utils import StatusTimeoutError

from devices.base import InterlockError
from devices.envelope import LimitError
from devices.mill import MillProgram, SimPlanetaryMill
from simulators.lab import SimLab
from tests.devices.conftest import make_lab

PROGRAM = MillProgram("S1", rpm=600.0, duration_h=2.0, ball_to_powder_ratio=10.0, k_excess=0.03)


def test_a_milling_run_completes_and_hands_its_powder_to_the_lab(lab: SimLab) -> None:
    mill = SimPlanetaryMill(name="mill", lab=lab)
    mill.set(PROGRAM).wait(timeout=15)
    assert mill.state.get() == "done"
    assert mill.speed_rpm.get() == 0.0
    truthful_dose = 30.0 * 2.0  # ±10 % scatter
    powder = lab._samples["S1"].powder
    assert powder is not None and 0.6 * truthful_dose < powder.dose_mj_per_kg < 1.4 * truthful_dose
    mill.loop.stop()


@pytest.mark.parametrize(
    "program",
    [
        MillProgram("S1", rpm=2000.0, duration_h=1.0, ball_to_powder_ratio=10.0, k_excess=0.0),
        MillProgram("S1", rpm=float("nan"), duration_h=1.0, ball_to_powder_ratio=10.0, k_excess=0.0),
        MillProgram("S1", rpm=600.0, duration_h=100.0, ball_to_powder_ratio=10.0, k_excess=0.0),
        MillProgram("S1", rpm=600.0, duration_h=1.0, ball_to_powder_ratio=90.0, k_excess=0.0),
    ],
)
def test_out_of_envelope_programs_are_refused_before_anything_moves(lab: SimLab, program: MillProgram) -> None:
    mill = SimPlanetaryMill(name="mill", lab=lab)
    with pytest.raises(LimitError, match="safety envelope"):
        mill.set(program)
    assert mill.state.get() == "idle" and not mill.loop.running


def test_a_hung_mill_times_out_and_is_stopped(lab: SimLab) -> None:
    mill = SimPlanetaryMill(name="mill", lab=lab)
    mill.timeout_slack_wall_s = 0.3
    mill.loop.hang = True
    status = mill.set(PROGRAM)
    with pytest.raises(StatusTimeoutError):
        status.wait(timeout=10)
    assert mill.state.get() == "stopped"
    mill.loop.stop()


def test_stop_spins_the_mill_down(lab: SimLab) -> None:
    lab.clock.set_acceleration(100.0)
    mill = SimPlanetaryMill(name="mill", lab=lab)
    status = mill.set(PROGRAM)
    while mill.speed_rpm.get() < 100:
        pass
    mill.stop()
    with pytest.raises(InterlockError, match="stopped"):
        status.wait(timeout=5)
    assert mill.speed_rpm.get() == 0.0 and mill.state.get() == "stopped"
    mill.loop.stop()


def test_a_jam_fails_the_status() -> None:
    lab = make_lab(forced=("mill_jam",))
    mill = SimPlanetaryMill(name="mill", lab=lab)
    with pytest.raises(InterlockError, match="jammed"):
        mill.set(PROGRAM).wait(timeout=15)
    mill.loop.stop()


def test_an_overheating_vial_trips_the_interlock() -> None:
    lab = make_lab(forced=("vial_overtemperature",))
    mill = SimPlanetaryMill(name="mill", lab=lab)
    with pytest.raises(InterlockError, match="overtemp"):
        mill.set(MillProgram("S1", rpm=750.0, duration_h=3.0, ball_to_powder_ratio=20.0, k_excess=0.0)).wait(timeout=15)
    assert mill.speed_rpm.get() == 0.0
    mill.loop.stop()
