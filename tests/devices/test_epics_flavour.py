"""The EPICS flavour against a real Channel Access server (a caproto IOC on loopback)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

PORT = "5094"  # not the default 5064: never talk to a site's IOCs from a test
PREFIX = "GLTEST:MILL:"


@pytest.fixture(scope="module")
def epics_env() -> Iterator[None]:
    env = {
        "EPICS_CA_ADDR_LIST": "127.0.0.1",
        "EPICS_CA_AUTO_ADDR_LIST": "NO",
        "EPICS_CA_SERVER_PORT": PORT,
        "EPICS_CAS_INTF_ADDR_LIST": "127.0.0.1",
        "EPICS_CAS_SERVER_PORT": PORT,
        "EPICS_CA_REPEATER_PORT": "5095",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    ioc = subprocess.Popen(
        [sys.executable, "-m", "tests.devices.epics_mill_ioc", "--prefix", PREFIX, "--interfaces", "127.0.0.1", "-q"],
        env={**os.environ},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        ioc.terminate()
        ioc.wait(timeout=10)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def mill(epics_env: None):
    import ophyd

    ophyd.set_cl("caproto")
    from devices.mill import EpicsPlanetaryMill

    device = EpicsPlanetaryMill(PREFIX, name="mill")
    deadline = time.monotonic() + 20
    while not device.connected and time.monotonic() < deadline:
        time.sleep(0.1)
    assert device.connected, "the test IOC did not come up on loopback"
    return device


def test_pv_names_follow_the_documented_suffixes(mill) -> None:
    assert mill.speed_rpm.pvname == PREFIX + "Speed-RB"
    assert mill.start_cmd.pvname == PREFIX + "Start-Cmd"


def test_the_epics_mill_runs_a_programme_and_finishes_with_the_ioc(mill) -> None:
    from devices.mill import MillProgram

    mill.set(MillProgram("S-epics", rpm=500.0, duration_h=1.0, ball_to_powder_ratio=10.0, k_excess=0.02)).wait(
        timeout=30
    )
    assert mill.state.get() == "done"
    assert mill.speed_setpoint_rpm.get() == 500.0
    assert mill.sample_id.get() == "S-epics"


def test_the_epics_mill_refuses_out_of_envelope_programmes_without_writing(mill) -> None:
    from devices.envelope import LimitError
    from devices.mill import MillProgram

    before = mill.speed_setpoint_rpm.get()
    with pytest.raises(LimitError):
        mill.set(MillProgram("S-epics", rpm=2000.0, duration_h=1.0, ball_to_powder_ratio=10.0, k_excess=0.0))
    assert mill.speed_setpoint_rpm.get() == before
