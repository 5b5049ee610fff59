"""The worker's supervisor: start it, watch its heartbeat on a monotonic clock, and replace it when lost.

Every `interval_s` the watchdog asks the worker for its status. A worker is *lost* when its process has
exited, or when it has not given a healthy answer (reply received and its RunEngine loop responsive) for
`timeout_s` — after `startup_grace_s` for a new one, whose imports take seconds. A lost worker is killed
(SIGKILL: a hung process cannot be asked), the instruments are made safe (`make_safe`, which must not
depend on the worker), listeners are told why, and a new worker starts. Restarts back off (1, 2, 4 …
30 s) so that a worker that dies at start cannot spin the machine.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controller.manager.safety import PowerRelays, instruments_at_rest
from controller.worker.protocol import WorkerClient, WorkerUnavailableError

log = logging.getLogger("grainloop.watchdog")


class WorkerSupervisor:
    """One worker process and the thread that watches it. Thread-safe."""

    def __init__(
        self,
        *,
        port: int,
        data_dir: Path,
        world_file: Path | None = None,
        publish: str | None = None,
        host: str = "127.0.0.1",
        interval_s: float = 0.5,
        timeout_s: float = 5.0,
        startup_grace_s: float = 90.0,
        make_safe: Callable[[], str] | None = None,
        on_lost: Callable[[str], None] | None = None,
        log_path: Path | None = None,
        relays: PowerRelays | None = None,
        store: tuple[str, str | None] | None = None,
    ) -> None:
        self.port, self.host, self.data_dir, self.store = port, host, data_dir, store
        self.world_file, self.publish = world_file, publish
        self.interval_s, self.timeout_s, self.startup_grace_s = interval_s, timeout_s, startup_grace_s
        self.make_safe, self.on_lost, self.relays = make_safe, on_lost, relays
        self.log_path = log_path or data_dir / "worker.log"
        self.address = f"tcp://{host}:{port}"
        self.commands = WorkerClient(self.address, timeout_s=max(timeout_s, 2.0))
        self._poll = WorkerClient(self.address, timeout_s=min(interval_s * 2, timeout_s))
        self._command_lock = threading.Lock()
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_healthy = 0.0
        self._started_at = 0.0
        self._backoff_s = 1.0
        self.status: dict[str, Any] | None = None
        self.restarts = 0
        self.lost_reasons: list[str] = []
        self.wanted = False

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker and the watchdog (idempotent)."""
        with self._lock:
            self.wanted = True
            if self._proc is None or self._proc.poll() is not None:
                self._spawn()
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._watch, name="worker-watchdog", daemon=True)
                self._thread.start()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop watching, ask the worker to shut down (its running plan is aborted safely), then kill it."""
        with self._lock:
            self.wanted = False
            self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            try:
                self.call("shutdown", timeout_s=2.0)
            except (WorkerUnavailableError, RuntimeError):
                proc.terminate()
            try:
                proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        self.status = None
        self.commands.close()
        self._poll.close()

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    @property
    def ready(self) -> bool:
        return self.status is not None

    def call(self, method: str, timeout_s: float | None = None, **params: Any) -> dict[str, Any]:
        """A command to the worker; RuntimeError with the worker's reason if it refused."""
        with self._command_lock:
            reply = self.commands.call(method, timeout_s=timeout_s, **params)
        if not reply.get("ok"):
            raise RuntimeError(reply.get("error", "worker refused"))
        return reply

    # -- watching ----------------------------------------------------------------------------------
    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "controller.worker", "--port", str(self.port), "--host", self.host]
        cmd += ["--data-dir", str(self.data_dir)]
        if self.world_file:
            cmd += ["--world", str(self.world_file)]
        if self.publish:
            cmd += ["--publish", self.publish]
        if self.relays is not None:
            cmd += ["--relays", str(self.relays.path)]
        env = dict(os.environ)
        # a dead run store must cost a plan a bounded wait, not tiled's default 10 retries over 45 s
        env.setdefault("TILED_RETRY_ATTEMPTS", "2")
        env.setdefault("TILED_RETRY_TIMEOUT", "3")
        if self.store is not None:  # the key goes by environment, not on a command line anyone can list
            cmd += ["--store", self.store[0]]
            if self.store[1]:
                env["GRAINLOOP_TILED_API_KEY"] = self.store[1]
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        logfile = open(self.log_path, "ab")  # noqa: SIM115 — handed to the child, closed when it is replaced
        self._proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
        logfile.close()
        self._started_at = self._last_healthy = time.monotonic()
        self.status = None
        log.info("worker started, pid %s", self._proc.pid)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            proc = self._proc
            reason = None
            if proc is None or proc.poll() is not None:
                code = None if proc is None else proc.returncode
                reason = f"worker process exited (code {code})"
            else:
                try:
                    status = self._poll.call("status")
                    if status.get("ok") and status.get("loop_ok", False):
                        self._rearm_if_at_rest()  # before the manager sees a ready worker and sends it work
                        self.status = status
                        self._last_healthy = time.monotonic()
                        self._backoff_s = 1.0
                except WorkerUnavailableError:
                    pass
                silent_s = time.monotonic() - self._last_healthy
                grace = self.startup_grace_s if self.status is None else self.timeout_s
                if silent_s > grace:
                    reason = f"worker unresponsive for {silent_s:.1f} s"
            if reason is not None and not self._stop.is_set():
                self._replace(reason)

    def _rearm_if_at_rest(self) -> None:
        """Re-arm cut relays once a healthy worker reports the furnace cool and the mill stopped."""
        if self.relays is None or self.relays.armed:
            return
        try:
            devices = self._poll.call("devices").get("devices", {})
        except WorkerUnavailableError:
            return
        if instruments_at_rest(devices) is None:
            self.relays.arm(by="watchdog: new worker reports the instruments at rest")
            log.info("relays re-armed")

    def _replace(self, reason: str) -> None:
        log.error("%s: killing it, making the instruments safe, restarting", reason)
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        self.status = None
        safe = "no safe action configured"
        try:
            if self.relays is not None:
                safe = self.relays.cut(reason)
            if self.make_safe is not None:
                safe = f"{safe}; {self.make_safe()}" if self.relays is not None else self.make_safe()
        except Exception as exc:  # reported, and the restart still happens
            safe = f"making safe FAILED: {type(exc).__name__}: {exc}"
            log.exception("making the instruments safe failed")
        full = f"{reason}; {safe}"
        self.lost_reasons.append(full)
        if self.on_lost is not None:
            self.on_lost(full)
        if self._stop.wait(self._backoff_s):
            return
        self._backoff_s = min(self._backoff_s * 2, 30.0)
        with self._lock:
            if self.wanted:
                self.restarts += 1
                self._spawn()
