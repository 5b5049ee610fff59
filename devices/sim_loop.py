"""The sim backends' stand-in for an IOC: a thread that advances a plant to the simulated clock."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from simulators.clock import SimClock

log = logging.getLogger(__name__)


class SimLoop:
    """Calls `advance(dt_sim_s)` every `period_wall_s` while running, then `publish()` to update signals.

    A `hang` flag freezes the loop (the plant stops answering), so tests can show that every move has a
    timeout that fires on a hung instrument.
    """

    def __init__(
        self,
        name: str,
        clock: SimClock,
        advance: Callable[[float], None],
        publish: Callable[[], None],
        period_wall_s: float = 0.005,
    ) -> None:
        self.name = name
        self.clock = clock
        self._advance, self._publish = advance, publish
        self.period_wall_s = period_wall_s
        self.hang = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_s = 0.0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.running:
            return
        self._stop.clear()
        self._last_s = self.clock.now_s()
        self._thread = threading.Thread(target=self._run, name=f"sim-{self.name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=2.0)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.wait(self.period_wall_s):
            if self.hang:
                continue
            now = self.clock.now_s()
            dt, self._last_s = now - self._last_s, now
            try:
                self._advance(dt)
                self._publish()
            except Exception:  # a crashed plant must not kill the process; the device's timeout will fire
                log.exception("sim loop %s failed", self.name)
                return
