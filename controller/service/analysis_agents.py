"""The analysis agents' processes, kept running by the API process.

One child per agent named in `ServiceSettings.agents` (`controller.service.analysis_process`). A thread
checks them every `interval_s`; one that exited is started again after a back-off that doubles from 1 s
to 30 s (reset once a process has lived a minute), and every restart is counted. Each child logs to
`data_dir/logs/<agent>.log`. `stop` sends SIGTERM, then kills what has not exited.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger("grainloop.service")
HEALTHY_AFTER_S = 60.0
"""A process that has run this long resets its restart back-off."""


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen | None = None
    started_at: float = 0.0
    backoff_s: float = 1.0
    next_start: float = 0.0
    restarts: int = 0
    exits: list[int] = field(default_factory=list)


class AnalysisAgents:
    """Start, watch and stop the analysis agent processes. Thread-safe."""

    def __init__(
        self,
        names: list[str],
        *,
        subscribe: str,
        publish: str,
        data_dir: Path,
        store: tuple[str, str | None] | None = None,
        interval_s: float = 0.5,
    ) -> None:
        self.subscribe, self.publish, self.data_dir, self.store = subscribe, publish, data_dir, store
        self.interval_s = interval_s
        self._children = {name: _Child(name) for name in names}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        with self._lock:
            for child in self._children.values():
                if child.proc is None or child.proc.poll() is not None:
                    self._spawn(child)
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="analysis-agents", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        with self._lock:
            procs = [c.proc for c in self._children.values() if c.proc is not None and c.proc.poll() is None]
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + timeout_s
        for proc in procs:
            try:
                proc.wait(max(deadline - time.monotonic(), 0.1))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def status(self) -> dict[str, dict[str, object]]:
        """Per agent: up, pid, restarts, the exit codes seen."""
        with self._lock:
            return {
                name: {
                    "up": c.proc is not None and c.proc.poll() is None,
                    "pid": c.proc.pid if c.proc is not None and c.proc.poll() is None else None,
                    "restarts": c.restarts,
                    "exit_codes": list(c.exits[-10:]),
                }
                for name, c in self._children.items()
            }

    def _spawn(self, child: _Child) -> None:
        cmd = [sys.executable, "-m", "controller.service.analysis_process", child.name]
        cmd += ["--subscribe", self.subscribe, "--publish", self.publish, "--data-dir", str(self.data_dir)]
        env = dict(os.environ)
        env.setdefault("TILED_RETRY_ATTEMPTS", "2")
        env.setdefault("TILED_RETRY_TIMEOUT", "3")
        env.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # an idle agent must not spin a core the worker needs
        if self.store is not None:  # the key by environment, never on a command line
            cmd += ["--store", self.store[0]]
            if self.store[1]:
                env["GRAINLOOP_TILED_API_KEY"] = self.store[1]
        logs = self.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / f"{child.name}.log", "ab") as logfile:
            child.proc = subprocess.Popen(cmd, stdout=logfile, stderr=subprocess.STDOUT, env=env)
        child.started_at = time.monotonic()
        log.info("%s agent started, pid %s", child.name, child.proc.pid)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            now = time.monotonic()
            with self._lock:
                for child in self._children.values():
                    proc = child.proc
                    if proc is None:
                        if now >= child.next_start:
                            child.restarts += 1
                            self._spawn(child)
                        continue
                    if proc.poll() is None:
                        if now - child.started_at > HEALTHY_AFTER_S:
                            child.backoff_s = 1.0
                        continue
                    child.exits.append(int(proc.returncode))
                    log.error(
                        "%s agent exited (code %s); restarting in %.0f s", child.name, proc.returncode, child.backoff_s
                    )
                    child.proc = None
                    child.next_start = now + child.backoff_s
                    child.backoff_s = min(child.backoff_s * 2, 30.0)
