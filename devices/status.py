"""Status objects with a timeout that make the instrument safe when they fail."""

from __future__ import annotations

from collections.abc import Callable

from ophyd import Device
from ophyd.status import DeviceStatus


class InterlockError(RuntimeError):
    """An instrument's interlock tripped (over-temperature, broken thermocouple, jam); it is now safe."""


def safe_status(device: Device, timeout_s: float, make_safe: Callable[[], None]) -> DeviceStatus:
    """A `DeviceStatus` that times out after `timeout_s` wall seconds and calls `make_safe` on any failure."""
    status = DeviceStatus(device, timeout=timeout_s, settle_time=0)

    def _on_done(st: DeviceStatus) -> None:
        if not st.success:
            make_safe()

    status.add_callback(_on_done)
    return status
