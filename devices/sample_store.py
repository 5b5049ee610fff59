"""Where each sample is: the transfer robot's book of locations (observable, not hidden)."""

from __future__ import annotations

import json
import threading

from ophyd import Component as Cpt
from ophyd import Signal
from ophyd.status import DeviceStatus

from devices.base import LabDevice, complete_in_thread
from devices.envelope import LimitError
from simulators.clock import SimClock

LOCATIONS = ("glovebox", "mill", "furnace", "stem", "property_station", "archive")
TRANSFER_S = 120.0
"""A transfer by the robot takes two simulated minutes."""


class SampleStore(LabDevice):
    """`set((sample_id, location))` moves a sample; `locations` holds the JSON map sample → location."""

    locations = Cpt(Signal, value="{}", kind="normal")
    last_moved = Cpt(Signal, value="", kind="normal")
    timeout_margin = 3.0

    def __init__(self, *args: object, clock: SimClock | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.clock = clock or SimClock(1.0)
        self._book: dict[str, str] = {}
        self._lock = threading.Lock()

    def _wall_s(self, instrument_s: float) -> float:
        return self.clock.wall_seconds(instrument_s)

    def location_of(self, sample_id: str) -> str | None:
        with self._lock:
            return self._book.get(sample_id)

    def set(self, value: tuple[str, str]) -> DeviceStatus:  # type: ignore[override]
        sample_id, location = value
        if location not in LOCATIONS:
            raise LimitError(f"unknown location {location!r}; expected one of {', '.join(LOCATIONS)}")
        if not sample_id:
            raise LimitError("sample_id must not be empty")

        def _move() -> None:
            self.clock.sleep(TRANSFER_S)
            with self._lock:
                self._book[sample_id] = location
                book = json.dumps(self._book, sort_keys=True)
            self.locations.put(book)
            self.last_moved.put(sample_id)

        return complete_in_thread(self.timed_status(TRANSFER_S), _move, f"{self.name}-transfer")
