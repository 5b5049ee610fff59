"""Making the instruments safe without the worker: the path the watchdog takes when a worker is lost.

A lost worker cannot stop its own plan, so the heater and the mill motor must be cut by a path that does
not go through it. `PowerRelays` is that path for the simulated lab: a small file standing in for the
site's relay controller. The watchdog *cuts* it; while cut, the worker refuses every plan that heats or
spins; the supervisor *re-arms* it only once a new worker answers and reports the furnace below its safe
temperature and the mill at rest. With EPICS instruments, `epics_make_safe` puts the furnace's
heater-off and the mill's stop commands directly (and the relays record that it did).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devices.envelope import FURNACE


class PowerRelays:
    """Heater and mill-motor relays as a JSON file (atomic writes); absent file = armed."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except (FileNotFoundError, ValueError):
            return {"armed": True}

    @property
    def armed(self) -> bool:
        return bool(self.state().get("armed", True))

    def _write(self, state: Mapping[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(dict(state)))
        os.replace(tmp, self.path)

    def cut(self, reason: str) -> str:
        self._write({"armed": False, "cut_at_s": time.time(), "reason": reason})
        return "heater and mill motor relays cut"

    def arm(self, by: str) -> None:
        self._write({"armed": True, "armed_at_s": time.time(), "armed_by": by, "previous": self.state()})


def instruments_at_rest(devices: Mapping[str, Mapping[str, Any]]) -> str | None:
    """None if a device snapshot shows the furnace cool and the mill stopped, else why not."""
    try:
        temperature = float(devices["furnace"]["furnace_temperature_c"]["value"])
        speed = float(devices["mill"]["mill_speed_rpm"]["value"])
    except (KeyError, TypeError, ValueError):
        return "furnace temperature or mill speed not readable"
    if temperature > FURNACE.safe_temperature_c:
        return f"furnace at {temperature:.0f} °C (safe below {FURNACE.safe_temperature_c:.0f} °C)"
    if speed > 0:
        return f"mill turning at {speed:.0f} rpm"
    return None


def epics_make_safe(furnace_prefix: str, mill_prefix: str, timeout_s: float = 5.0) -> str:
    """Put the heater-off and mill-stop commands over Channel Access; raises if either put fails."""
    from ophyd import EpicsSignal

    done = []
    for pv in (f"{furnace_prefix}HeaterOff-Cmd", f"{mill_prefix}Stop-Cmd"):
        signal = EpicsSignal(pv, name=pv.replace(":", "_"))
        signal.wait_for_connection(timeout=timeout_s)
        signal.put(1, wait=True, timeout=timeout_s)
        done.append(pv)
    return "put " + ", ".join(done)
