"""`concurrently`: plans overlap while they wait, a failure stays with its plan, resources go in turn."""

from __future__ import annotations

import threading
import time

from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import FailedStatus
from ophyd import Component as Cpt
from ophyd import Device, Signal
from ophyd.status import DeviceStatus

from controller.plans.concurrent import concurrently, hold
from controller.plans.stages import Plan


class Actuator(Device):
    """Moves in a thread; `started` and `finished` record the order of events, `fail` makes a move fail."""

    reading = Cpt(Signal, value=0)

    def __init__(self, *args: object, delay_s: float = 0.05, fail: bool = False, log: list[str], **kwargs: object):
        super().__init__(*args, **kwargs)
        self.delay_s, self.fails, self.record = delay_s, fail, log

    def set(self, value: float) -> DeviceStatus:  # type: ignore[override]
        status = DeviceStatus(self)

        def _move() -> None:
            self.record.append(f"{self.name} started {value}")
            time.sleep(self.delay_s)
            self.record.append(f"{self.name} finished {value}")
            if self.fails:
                status.set_exception(RuntimeError(f"{self.name} jammed"))
            else:
                self.reading.put(value)
                status.set_finished()

        threading.Thread(target=_move, daemon=True).start()
        return status


def engine() -> RunEngine:
    return RunEngine({}, call_returns_result=True)


def test_moves_of_different_plans_overlap() -> None:
    log: list[str] = []
    a, b = Actuator(name="a", log=log, delay_s=0.3), Actuator(name="b", log=log, delay_s=0.3)
    errors = engine()(concurrently({"A": bps.mv(a, 1), "B": bps.mv(b, 2)})).plan_result
    assert errors == {"A": None, "B": None}
    assert log.index("b started 2") < log.index("a finished 1")
    assert (a.reading.get(), b.reading.get()) == (1, 2)


def test_a_failed_status_fails_its_own_plan_while_the_other_keeps_sending_messages() -> None:
    log: list[str] = []
    jammed = Actuator(name="jammed", fail=True, delay_s=0.02, log=log)
    counter = Signal(name="counter", value=0)

    def busy() -> Plan:  # hundreds of quick messages: the failure lands while one of them is processed
        for i in range(1, 401):
            yield from bps.mv(counter, i)
            yield from bps.null()

    def first_to_jam() -> Plan:
        yield from bps.mv(jammed, 1)
        yield from bps.mv(counter, -1)  # never reached

    errors = engine()(concurrently({"jam": first_to_jam(), "busy": busy()})).plan_result
    assert isinstance(errors["jam"], FailedStatus) and "jammed" in str(errors["jam"].__cause__)
    assert errors["busy"] is None and counter.get() == 400


def test_a_held_resource_goes_to_plans_in_the_order_they_asked() -> None:
    log: list[str] = []
    tool = Actuator(name="tool", log=log, delay_s=0.01)
    robot = Actuator(name="robot", log=log, delay_s=0.01)

    def job(n: int) -> Plan:
        yield from bps.mv(robot, n)  # one robot: its moves never overlap
        yield from hold("tool", bps.mv(tool, n))

    plans = {n: bpp.set_run_key_wrapper(job(n), n) for n in range(3)}
    errors = engine()(concurrently(plans, exclusive=[robot])).plan_result
    assert errors == {0: None, 1: None, 2: None}
    for name in ("tool", "robot"):
        events = [e for e in log if e.startswith(name)]
        assert events == [f"{name} {what} {n}" for n in range(3) for what in ("started", "finished")]
