"""Manager ↔ worker messages: JSON over a 0MQ REQ/REP socket on loopback.

Requests are `{"method": name, ...}`; replies are `{"ok": true, ...}` or `{"ok": false, "error": "..."}`.
Methods: `status`, `run` (`item`), `pause` (`option`: deferred | immediate), `resume`, `stop`, `abort`,
`halt`, `ack` (`item_uids`: finished items the manager has recorded), `devices`, `shutdown`, and
`sim_interlock` (`tripped`: set a simulated lab's site interlock; refused by a real lab).

A REQ socket that timed out cannot send again, so the client closes it and opens a new one on every
timeout: a hung worker costs the manager one timeout, never a wedged socket.
"""

from __future__ import annotations

import json
from typing import Any

import zmq

METHODS = ("status", "run", "pause", "resume", "stop", "abort", "halt", "ack", "devices", "shutdown", "sim_interlock")


class WorkerUnavailableError(ConnectionError):
    """The worker did not answer within the timeout (dead, hung or not started yet)."""


class WorkerClient:
    """Blocking request/reply to one worker; safe to use from one thread at a time."""

    def __init__(self, address: str, timeout_s: float = 2.0) -> None:
        self.address, self.timeout_s = address, timeout_s
        self._ctx = zmq.Context.instance()
        self._sock: zmq.Socket | None = None

    def _socket(self) -> zmq.Socket:
        if self._sock is None:
            sock = self._ctx.socket(zmq.REQ)
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(self.address)
            self._sock = sock
        return self._sock

    def _reset(self) -> None:
        if self._sock is not None:
            self._sock.close(linger=0)
            self._sock = None

    def call(self, method: str, timeout_s: float | None = None, **params: Any) -> dict[str, Any]:
        """Send one request; the reply, or WorkerUnavailableError after `timeout_s`."""
        if method not in METHODS:
            raise ValueError(f"unknown worker method {method!r}")
        sock = self._socket()
        timeout_ms = int(1000 * (self.timeout_s if timeout_s is None else timeout_s))
        try:
            sock.send(json.dumps({"method": method, **params}).encode())
            if not sock.poll(timeout_ms, zmq.POLLIN):
                raise WorkerUnavailableError(f"worker at {self.address} did not answer {method!r} in {timeout_ms} ms")
            return json.loads(sock.recv())
        except WorkerUnavailableError:
            self._reset()
            raise
        except zmq.ZMQError as exc:
            self._reset()
            raise WorkerUnavailableError(f"worker at {self.address}: {exc}") from exc

    def close(self) -> None:
        self._reset()
