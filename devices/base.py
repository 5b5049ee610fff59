"""What every instrument shares: instrument time vs wall time, statuses that time out and make safe,
and programmes whose `state` signal decides how their status ends."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ophyd import Device
from ophyd.status import DeviceStatus

from simulators.lab import SimLab


class InterlockError(RuntimeError):
    """An instrument's interlock tripped (over-temperature, broken thermocouple, jam); it is now safe."""


class _SafeStatus(DeviceStatus):
    """A `DeviceStatus` that makes the instrument safe before anyone waiting on it learns it failed.

    ophyd wakes `wait()` before it runs the callbacks; its `_settled` hook runs before both, once the
    outcome (finished, failed, timed out) is decided. Making safe there means a caller that sees the
    failure (the RunEngine, a test) always finds the instrument already stopped."""

    def __init__(self, device: Device, timeout_s: float, make_safe: Callable[[], None]) -> None:
        super().__init__(device, timeout=timeout_s, settle_time=0)
        self._make_safe = make_safe

    def _settled(self) -> None:
        if self._exception is not None:
            self._make_safe()


def safe_status(device: Device, timeout_s: float, make_safe: Callable[[], None]) -> DeviceStatus:
    """A `DeviceStatus` that times out after `timeout_s` wall seconds and calls `make_safe` on any failure,
    before the failure is reported."""
    return _SafeStatus(device, timeout_s, make_safe)


def complete_in_thread(status: DeviceStatus, work: Callable[[], None], name: str) -> DeviceStatus:
    """Run `work` in a daemon thread: its return finishes `status`, its exception fails it (never lost)."""

    def _run() -> None:
        try:
            work()
        except Exception as exc:
            status.set_exception(exc)
        else:
            status.set_finished()

    threading.Thread(target=_run, name=name, daemon=True).start()
    return status


class LabDevice(Device):
    """An instrument whose every action has a timeout: expected time × margin + slack."""

    timeout_margin = 1.5
    timeout_slack_wall_s = 10.0

    def _wall_s(self, instrument_s: float) -> float:
        """Wall time of `instrument_s` seconds of instrument time (the same on real hardware)."""
        return instrument_s

    def timed_status(self, instrument_s: float) -> DeviceStatus:
        """A status for an action expected to take `instrument_s`; failing or timing out calls `stop()`."""
        return safe_status(
            self, self._wall_s(instrument_s * self.timeout_margin) + self.timeout_slack_wall_s, self.stop
        )


class ProgrammedDevice(LabDevice):
    """Runs a programme to completion; its status ends on the instrument's `state` or on `end_programme`.

    The instrument's own controller reports "done" (success) or one of `FAILED_STATES` (its own
    interlocks). Stops and trips decided here end the status through `end_programme`: a
    `stop(success=True)` — the RunEngine pausing or suspending, to rewind and re-run later — ends it
    normally; any other stop or trip fails it.
    """

    FAILED_STATES: frozenset[str] = frozenset()
    state: Any  # the subclass's state Component

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._programme: DeviceStatus | None = None
        self._programme_lock = threading.Lock()

    def programme_status(self, instrument_s: float) -> DeviceStatus:
        status = self.timed_status(instrument_s)
        with self._programme_lock:
            self._programme = status

        def _watch(value: str, **_: object) -> None:
            if value == "done":
                self._end(status, None)
            elif value in self.FAILED_STATES:
                self._end(status, InterlockError(self.failure_reason(value)))

        self.state.subscribe(_watch, run=False)
        status.add_callback(lambda _st: self.state.clear_sub(_watch))
        return status

    def end_programme(self, *, success: bool, reason: str) -> None:
        """End the running programme's status: finished, or failed with `reason`."""
        status = self._programme
        if status is not None:
            self._end(status, None if success else InterlockError(f"{self.name}: {reason}"))

    def _end(self, status: DeviceStatus, error: Exception | None) -> None:
        """End `status` once: whichever of the state watcher and a stop or trip comes first wins."""
        with self._programme_lock:
            if self._programme is not status or status.done:
                return
            self._programme = None
        if error is None:
            status.set_finished()
        else:
            status.set_exception(error)

    def failure_reason(self, state: str) -> str:
        return f"{self.name}: programme ended in state {state!r}"


class SimBacked:
    """Mixin of the sim flavours: bound to a `SimLab`, instrument time runs on its clock."""

    def __init__(self, *args: Any, lab: SimLab, **kwargs: Any) -> None:
        self.lab = lab
        super().__init__(*args, **kwargs)

    def _wall_s(self, instrument_s: float) -> float:
        return self.lab.clock.wall_seconds(instrument_s)
