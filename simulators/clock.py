"""A simulated clock: simulated time runs `time_acceleration` times faster than the wall clock.

Factor 1 is real time. Instruments advance their plants to `now_s()`, so a 10 h sintering at the
default factor (1e5) takes about 0.36 s of wall time while its readbacks still evolve live.
"""

from __future__ import annotations

import threading
import time


class SimClock:
    """Monotonic simulated time, with sleep in simulated seconds."""

    def __init__(self, time_acceleration: float = 1.0e5) -> None:
        if not time_acceleration > 0:
            raise ValueError(f"time_acceleration must be > 0, got {time_acceleration}")
        self.time_acceleration = float(time_acceleration)
        self._wall_origin_s = time.monotonic()
        self._sim_origin_s = 0.0
        self._lock = threading.Lock()

    def now_s(self) -> float:
        """Simulated seconds since the clock was made."""
        with self._lock:
            return self._sim_origin_s + (time.monotonic() - self._wall_origin_s) * self.time_acceleration

    def set_acceleration(self, time_acceleration: float) -> None:
        """Change the factor without a jump in simulated time."""
        if not time_acceleration > 0:
            raise ValueError(f"time_acceleration must be > 0, got {time_acceleration}")
        now = self.now_s()
        with self._lock:
            self._sim_origin_s, self._wall_origin_s = now, time.monotonic()
            self.time_acceleration = float(time_acceleration)

    def wall_seconds(self, sim_seconds: float) -> float:
        """Wall time that `sim_seconds` of simulated time take."""
        return sim_seconds / self.time_acceleration

    def sleep(self, sim_seconds: float) -> None:
        """Sleep for `sim_seconds` of simulated time."""
        if sim_seconds > 0:
            time.sleep(self.wall_seconds(sim_seconds))
