"""The furnace enforces its envelope, runs a programme to a safe finish, trips its interlocks, stops safely."""

from __future__ import annotations

import re
import time

import pytest
from ophyd.utils import StatusTimeoutError

from devices.base import InterlockError
from devices.envelope import LimitError
from devices.furnace import FurnaceProgram, SimFurnace
from devices.mill import MillProgram, SimPlanetaryMill
from simulators.lab import SimLab
from simulators.truth import ideal_profile, truth_from_history
from tests.devices.conftest import make_lab

PROGRAM = FurnaceProgram(
    "S1", "hip", dwell_temperature_c=600.0, dwell_time_h=2.0, ramp_rate_c_per_min=5.0, pressure_mpa=190.0
)


def milled(lab: SimLab) -> SimLab:
    mill = SimPlanetaryMill(name="mill", lab=lab)
    mill.set(MillProgram("S1", 600.0, 2.0, 10.0, 0.03)).wait(timeout=15)
    mill.loop.stop()
    return lab


def test_a_programme_runs_to_a_safe_finish_and_records_the_real_history(lab: SimLab) -> None:
    furnace = SimFurnace(name="furnace", lab=milled(lab))
    furnace.set(PROGRAM).wait(timeout=20)
    assert furnace.state.get() == "done"
    assert furnace.temperature_c.get() < 110.0
    assert furnace.pressure_mpa.get() == 0.0
    history = lab._samples["S1"].furnace_history
    assert len(history) == 1
    _, sample_c, pressure = history[0]
    # the sample really saw the dwell (within its offset to the control thermocouple) and the pressure
    assert 575.0 < sample_c.max() < 615.0
    assert pressure.max() == pytest.approx(190.0, abs=1.0)
    # the real furnace (lag, controlled cool) lands near an ideal programme at the dwell the sample saw
    powder = lab._samples["S1"].powder
    assert powder is not None
    t, temp, p = ideal_profile(float(sample_c.max()), 2.0, 5.0, 190.0)
    ideal = truth_from_history(lab.world, powder, "hip", t, temp, p).properties.trapped_field_t
    assert lab.truth("S1").properties.trapped_field_t == pytest.approx(ideal, rel=0.15)


@pytest.mark.parametrize(
    ("program", "match"),
    [
        (FurnaceProgram("S1", "tube", 1500.0, 1.0, 5.0, 0.0), "dwell temperature"),
        (FurnaceProgram("S1", "hip", 600.0, 1.0, 5.0, 250.0), "hip pressure"),
        (FurnaceProgram("S1", "tube", 600.0, 1.0, 5.0, 10.0), "tube pressure"),
        (FurnaceProgram("S1", "sps", 600.0, 1.0, 500.0, 50.0), "sps ramp"),
        (FurnaceProgram("S1", "tube", 600.0, 100.0, 5.0, 0.0), "dwell time"),
        (FurnaceProgram("S1", "vacuum", 600.0, 1.0, 5.0, 0.0), "unknown furnace route"),
    ],
)
def test_out_of_envelope_programmes_are_refused(lab: SimLab, program: FurnaceProgram, match: str) -> None:
    furnace = SimFurnace(name="furnace", lab=lab)
    with pytest.raises(LimitError, match=match):
        furnace.set(program)
    assert furnace.state.get() == "idle"


def test_an_open_thermocouple_trips_the_interlock_and_the_heater_ends_off() -> None:
    lab = milled(make_lab(forced=("thermocouple_open",)))
    furnace = SimFurnace(name="furnace", lab=lab)
    with pytest.raises(InterlockError, match="thermocouple open circuit"):
        furnace.set(PROGRAM).wait(timeout=20)
    assert furnace.state.get() == "tripped"
    assert furnace.heater_power_pct.get() == 0.0
    assert furnace.thermocouple_ok.get() is False
    furnace.loop.stop()


def test_a_failed_heater_is_detected_and_the_programme_aborted() -> None:
    lab = milled(make_lab(forced=("heater_failure",)))
    furnace = SimFurnace(name="furnace", lab=lab)
    # a 10 h dwell puts the fault's onset (20-80 % of the programme) inside the soak, where it matters
    long_soak = FurnaceProgram("S1", "hip", 600.0, 10.0, 5.0, 190.0)
    with pytest.raises(InterlockError, match="heater failure"):
        furnace.set(long_soak).wait(timeout=20)
    assert furnace.state.get() == "tripped" and furnace.heater_power_pct.get() == 0.0
    furnace.loop.stop()


def test_a_hung_furnace_times_out_and_is_made_safe(lab: SimLab) -> None:
    furnace = SimFurnace(name="furnace", lab=milled(lab))
    furnace.timeout_slack_wall_s = 0.3
    furnace.loop.hang = True
    with pytest.raises(StatusTimeoutError):
        furnace.set(PROGRAM).wait(timeout=10)
    assert furnace.state.get() == "stopped"
    furnace.loop.stop()


def test_stop_cuts_the_heater_and_the_furnace_cools(lab: SimLab) -> None:
    furnace = SimFurnace(name="furnace", lab=milled(lab))
    lab.clock.set_acceleration(2000.0)
    status = furnace.set(PROGRAM)
    deadline = time.monotonic() + 10
    while furnace.temperature_c.get() < 200 and time.monotonic() < deadline:
        time.sleep(0.01)
    furnace.stop()
    with pytest.raises(InterlockError, match="stopped"):
        status.wait(timeout=5)
    assert furnace.heater_power_pct.get() == 0.0
    hot = furnace.temperature_c.get()
    time.sleep(0.5)
    assert furnace.temperature_c.get() < hot
    furnace.loop.stop()


def test_an_overshoot_fault_grows_the_hidden_grains() -> None:
    sizes = []
    for forced in ((), ("overshoot",)):
        lab = milled(make_lab(forced=forced, overshoot_k=15.0))
        furnace = SimFurnace(name="furnace", lab=lab)
        furnace.set(FurnaceProgram("S1", "hip", 700.0, 1.0, 10.0, 190.0)).wait(timeout=20)
        sizes.append(lab.truth("S1").outcome.grain_size_nm)
        furnace.loop.stop()
    assert sizes[1] > 1.05 * sizes[0]


def test_a_large_overshoot_trips_the_over_temperature_interlock() -> None:
    lab = milled(make_lab(forced=("overshoot",), overshoot_k=80.0))
    furnace = SimFurnace(name="furnace", lab=lab)
    with pytest.raises(InterlockError, match="over-temperature"):
        furnace.set(FurnaceProgram("S1", "hip", 700.0, 1.0, 10.0, 190.0)).wait(timeout=20)
    assert furnace.state.get() == "tripped" and furnace.heater_power_pct.get() == 0.0
    # the trip came within a few simulated seconds of crossing the margin, not a wall tick later: the
    # reading it tripped on is in the reason (the plant cools or coasts on afterwards, by wall-clock luck)
    tripped_at_c = float(re.search(r"over-temperature: ([0-9.]+) °C", furnace.interlock.get()).group(1))
    assert 700.0 + 25.0 < tripped_at_c < 700.0 + 25.0 + 15.0
    furnace.loop.stop()
