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


class Held(Device):
    """A move that runs until the test ends it: `status` is the latest one, never finished by the device."""

    reading = Cpt(Signal, value=0)

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.status: DeviceStatus | None = None

    def set(self, value: float) -> DeviceStatus:  # type: ignore[override]
        self.status = DeviceStatus(self)
        return self.status


class Meanwhile(Device):
    """`set` first makes `before()` happen (another plan's move fails), then refuses or starts a move.

    The failure reaches the RunEngine while it runs this `set`, so it is thrown in place of the answer.
    An accepted move finishes when `release` is set (at most `hold_s` later).
    """

    reading = Cpt(Signal, value=0)

    def __init__(self, *args: object, before, refuse: bool, log: list[str], hold_s: float = 5.0, **kwargs: object):
        super().__init__(*args, **kwargs)
        self.before, self.refuse, self.record, self.hold_s = before, refuse, log, hold_s
        self.release = threading.Event()

    def set(self, value: float) -> DeviceStatus:  # type: ignore[override]
        self.before()
        if self.refuse:
            raise ValueError(f"{self.name}: {value} is outside the envelope")
        status = DeviceStatus(self)

        def _move() -> None:
            self.release.wait(self.hold_s)
            self.record.append(f"{self.name} finished {value}")
            self.reading.put(value)
            status.set_finished()

        threading.Thread(target=_move, daemon=True).start()
        return status


def jam(held: Held) -> None:
    assert held.status is not None and not held.status.done
    held.status.set_exception(RuntimeError(f"{held.name} jammed"))  # callbacks run here: no timeout thread


def test_a_refused_move_fails_its_plan_even_when_another_plans_failure_arrives_meanwhile() -> None:
    log: list[str] = []
    held = Held(name="held")
    refusing = Meanwhile(name="refusing", before=lambda: jam(held), refuse=True, log=log)
    after = Signal(name="after", value=0)

    def refused() -> Plan:
        yield from bps.mv(refusing, 900)
        yield from bps.mv(after, 1)  # never reached: its move was refused

    errors = engine()(concurrently({"jam": bps.mv(held, 1), "refused": refused()})).plan_result
    assert isinstance(errors["jam"], FailedStatus) and "held jammed" in str(errors["jam"].__cause__)
    assert isinstance(errors["refused"], ValueError) and "outside the envelope" in str(errors["refused"])
    assert after.get() == 0


def test_an_accepted_move_is_still_waited_for_when_another_plans_failure_arrives_meanwhile() -> None:
    log: list[str] = []
    held = Held(name="held")
    slow = Meanwhile(name="slow", before=lambda: jam(held), refuse=False, log=log)
    other = Actuator(name="other", log=log, delay_s=0.0)

    def other_plan() -> Plan:
        yield from bps.mv(other, 1)
        slow.release.set()  # the slow move ends only once the other plan has had its turn

    plans = {"jam": bps.mv(held, 1), "slow": bps.mv(slow, 2), "other": other_plan()}
    errors = engine()(concurrently(plans)).plan_result
    assert isinstance(errors["jam"], FailedStatus)
    assert errors["slow"] is None and errors["other"] is None
    # the slow plan waited for its own move, not holding up the RunEngine while it ran
    assert log.index("other finished 1") < log.index("slow finished 2")
    assert (slow.reading.get(), other.reading.get()) == (2, 1)
