"""The worker: the one process that touches instruments. A RunEngine, a lab, and a command socket.

The RunEngine runs in the main thread (`Worker.serve_forever`), one task at a time: run an item, or
resume / stop / abort / halt a paused one. A second thread answers the manager on a REP socket
(`protocol.py`): it reports status, queues tasks, and requests pauses (the one RunEngine call that is
meant to come from another thread). A finished item's result stays in `completed` until the manager
acknowledges it, so a manager that restarts or misses a reply loses no result.

Liveness: every status reply probes the RunEngine's event loop (a no-op coroutine, 1 s); a worker whose
loop does not answer reports `loop_ok: false`, and one that does not answer at all is dead or hung — the
manager's watchdog decides.

    python -m controller.worker --port 8602 --data-dir DIR [--world FILE] [--publish HOST:PORT] [--store URI]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import queue
import signal
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zmq
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted

from controller.lab import Lab, build_sim_lab
from controller.manager.safety import PowerRelays
from controller.observations import ObservationCollector
from controller.plans.make_sample import failure_reason
from controller.worker.plans import HEATS_OR_SPINS, build_plan, validate_item
from simulators.world import World, load_world

log = logging.getLogger("grainloop.worker")
INTERRUPT_TASKS = ("resume", "stop", "abort", "halt")


@dataclass
class ItemState:
    item: dict[str, Any]
    time_start: float = field(default_factory=time.time)
    interrupt: str | None = None


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return None


class Worker:
    """Runs queue items on `lab` with `RE`; `handle(request)` is the command socket's entry."""

    def __init__(self, lab: Lab, RE: RunEngine, relays: PowerRelays | None = None) -> None:
        self.lab, self.RE, self.relays = lab, RE, relays
        self.observations = ObservationCollector()
        RE.subscribe(self.observations)
        self.tasks: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.lock = threading.Lock()
        self.current: ItemState | None = None
        self.completed: list[dict[str, Any]] = []
        self.started_s = time.time()
        self.shutting_down = False

    # -- the command socket's side ---------------------------------------------------------------
    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        method = request.get("method")
        try:
            handler: Callable[[dict[str, Any]], dict[str, Any]] = getattr(self, f"_cmd_{method}")
        except (AttributeError, TypeError):
            return {"ok": False, "error": f"unknown method {method!r}"}
        try:
            return {"ok": True, **handler(request)}
        except Exception as exc:  # a bad request must not take the worker down
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}

    def _busy(self) -> bool:
        return self.current is not None or not self.tasks.empty()

    def _cmd_status(self, request: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            current = dict(self.current.item) if self.current else None
            completed = list(self.completed)
        return {
            "pid": os.getpid(),
            "started_s": self.started_s,
            "re_state": str(self.RE.state),
            "loop_ok": self._loop_ok(),
            **self.suspension(),
            "running_item": current,
            "completed": completed,
        }

    def _cmd_run(self, request: dict[str, Any]) -> dict[str, Any]:
        item = request["item"]
        validate_item(item["name"], item.get("args"), item.get("kwargs"))
        if item["name"] in HEATS_OR_SPINS and self.relays is not None and not self.relays.armed:
            reason = self.relays.state().get("reason", "")
            raise RuntimeError(
                f"heater and mill relays are cut ({reason}); they re-arm once the instruments are at rest"
            )
        with self.lock:
            if self._busy() or self.shutting_down:
                raise RuntimeError("worker is busy" if not self.shutting_down else "worker is shutting down")
            self.current = ItemState(item)
        self.tasks.put(("run", item))
        return {"accepted": True}

    def _cmd_pause(self, request: dict[str, Any]) -> dict[str, Any]:
        option = request.get("option", "deferred")
        if option not in ("deferred", "immediate"):
            raise ValueError(f"pause option must be 'deferred' or 'immediate', got {option!r}")
        if self.RE.state != "running":
            raise RuntimeError(f"RunEngine is {self.RE.state}, nothing to pause")
        self.RE.request_pause(defer=option == "deferred")
        return {}

    def _interrupt(self, what: str) -> dict[str, Any]:
        if self.RE.state != "paused":
            raise RuntimeError(f"RunEngine is {self.RE.state}; {what} needs a paused plan")
        self.tasks.put((what, None))
        return {}

    def _cmd_resume(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._interrupt("resume")

    def _cmd_stop(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._interrupt("stop")

    def _cmd_abort(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._interrupt("abort")

    def _cmd_halt(self, request: dict[str, Any]) -> dict[str, Any]:
        return self._interrupt("halt")

    def _cmd_ack(self, request: dict[str, Any]) -> dict[str, Any]:
        uids = set(request.get("item_uids", []))
        with self.lock:
            self.completed = [r for r in self.completed if r["item_uid"] not in uids]
        return {}

    def _cmd_devices(self, request: dict[str, Any]) -> dict[str, Any]:
        return {"devices": self.devices_snapshot()}

    def _cmd_sim_interlock(self, request: dict[str, Any]) -> dict[str, Any]:
        """Trip (`tripped: true`) or reset the site interlock — on a simulated lab only."""
        if self.lab.sim is None:
            raise RuntimeError("this lab is not simulated: its site interlock is hardware and cannot be set remotely")
        tripped = request.get("tripped")
        if not isinstance(tripped, bool):
            raise ValueError(f"tripped must be true or false, got {tripped!r}")
        self.lab.interlock.put(1 if tripped else 0)
        return {"interlock": int(self.lab.interlock.get())}

    def _cmd_shutdown(self, request: dict[str, Any]) -> dict[str, Any]:
        self.request_shutdown()
        return {}

    # -- what it reports ---------------------------------------------------------------------------
    def _loop_ok(self) -> bool:
        async def noop() -> bool:
            return True

        try:
            return asyncio.run_coroutine_threadsafe(noop(), self.RE.loop).result(timeout=1.0)
        except Exception:
            return False

    def suspension(self) -> dict[str, Any]:
        """`RE.state` reads "running" while a suspender holds a plan; this says whether one does, and why."""
        tripped = [s for s in self.RE.suspenders if getattr(s, "tripped", False)]
        # bluesky keeps a suspender's message private (`_tripped_message`); there is no public accessor
        reasons = [str(getattr(s, "_tripped_message", "") or type(s).__name__) for s in tripped]
        return {"suspended": bool(tripped), "suspend_reason": "; ".join(reasons) or None}

    def devices_snapshot(self) -> dict[str, dict[str, Any]]:
        """Scalar readings of every instrument (value, timestamp), the site interlock included."""
        out: dict[str, dict[str, Any]] = {}
        for dev in [*self.lab.devices(), self.lab.interlock]:
            try:
                reading = dev.read()
            except Exception as exc:  # a device that cannot be read shows why, it does not hide the others
                out[dev.name] = {"error": f"{type(exc).__name__}: {exc}"}
                continue
            out[dev.name] = {
                key: {"value": value, "timestamp": r["timestamp"]}
                for key, r in reading.items()
                if (value := _jsonable(r["value"])) is not None
            }
        return out

    # -- the RunEngine's side ----------------------------------------------------------------------
    def request_shutdown(self) -> None:
        """Stop taking items; a running plan is paused and aborted, so its cleanup makes the lab safe."""
        self.shutting_down = True
        if self.RE.state == "running":
            try:
                self.RE.request_pause(defer=False)
            except Exception:
                log.exception("pause on shutdown failed")
        self.tasks.put(("shutdown", None))

    def serve_forever(self) -> None:
        while True:
            what, payload = self.tasks.get()
            if what == "shutdown":
                if self.RE.state == "paused":
                    self._finish(lambda: self.RE.abort("worker shut down"), "abort")
                return
            if what == "run":
                self._finish(lambda item=payload: self.RE(build_plan(self.lab, item["name"], item.get("kwargs"))))
            elif what in INTERRUPT_TASKS and self.current is not None:
                self.current.interrupt = what
                method = {"resume": self.RE.resume, "stop": self.RE.stop, "abort": self.RE.abort}.get(what)
                self._finish(method or self.RE.halt, what)
            if self.shutting_down and self.RE.state == "paused":
                self._finish(lambda: self.RE.abort("worker shut down"), "abort")

    def _finish(self, call: Callable[[], Any], interrupt: str | None = None) -> None:
        """Run `call` on the RunEngine; record the item's result unless it paused again."""
        state = self.current
        assert state is not None
        try:
            outcome = call()
        except RunEngineInterrupted:
            return  # paused: the item stays current until resumed, stopped, aborted or halted
        except Exception as exc:
            self._record(state, "failed", failure_reason(exc), None, traceback.format_exc())
            return
        uids = list(getattr(outcome, "run_start_uids", ()) or ())
        if interrupt in ("stop", "abort", "halt"):
            status = {"stop": "stopped", "abort": "aborted", "halt": "halted"}[interrupt]
        elif getattr(outcome, "exit_status", "success") == "success":
            status = "completed"
        else:
            status = "failed"
        reason = str(getattr(outcome, "reason", "") or "")
        self._record(state, status, reason, uids, "")

    def _record(self, state: ItemState, status: str, msg: str, uids: list[str] | None, tb: str) -> None:
        item = state.item
        result: dict[str, Any] = {
            "item_uid": item["item_uid"],
            "exit_status": status,
            "msg": msg,
            "traceback": tb,
            "run_uids": uids or [],
            "time_start": state.time_start,
            "time_stop": time.time(),
        }
        kwargs = item.get("kwargs") or {}
        if item["name"] == "make_sample":
            obs = self.observations.observations.get((kwargs.get("campaign_id"), kwargs.get("step")))
            if obs is not None:
                result["observation"] = {
                    "properties": obs.properties,
                    "phase_fractions_wt_pct": obs.phase_fractions_wt_pct,
                    "run_uid": obs.run_uid,
                }
        with self.lock:
            self.completed.append(result)
            self.current = None


def serve_commands(worker: Worker, address: str, ready: threading.Event, stop: threading.Event) -> None:
    """The REP loop; polls so that `stop` ends it within a tenth of a second."""
    sock = zmq.Context.instance().socket(zmq.REP)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(address)
    ready.set()
    try:
        while not stop.is_set():
            if not sock.poll(100, zmq.POLLIN):
                continue
            raw = sock.recv()
            try:
                request = json.loads(raw)
                reply = worker.handle(request) if isinstance(request, dict) else {"ok": False, "error": "not a dict"}
            except ValueError as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            sock.send_json(reply, default=str)
    finally:
        sock.close(linger=0)


def build_worker(
    world: World,
    data_dir: Path,
    publish: str | None = None,
    relays: PowerRelays | None = None,
    store_uri: str | None = None,
) -> Worker:
    """A worker on a simulated lab; documents also go to the run store at `store_uri` (a Tiled API root;
    its key in `GRAINLOOP_TILED_API_KEY`) and to a 0MQ proxy at `publish` (host:port), if given."""
    data_dir.mkdir(parents=True, exist_ok=True)
    lab = build_sim_lab(world, data_dir / "data")
    RE = RunEngine({}, call_returns_result=True, context_managers=[])
    RE.md["worker_pid"] = os.getpid()
    if store_uri:
        from controller.store.writer import RunStoreWriter, tiled_connector

        key = os.environ.get("GRAINLOOP_TILED_API_KEY")
        RE.subscribe(RunStoreWriter(tiled_connector(store_uri, key), data_dir / "store-backup"))
    if publish:
        from controller.stream.publisher import make_publisher

        host, port = publish.rsplit(":", 1)
        RE.subscribe(make_publisher((host, int(port))))
    return Worker(lab, RE, relays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controller.worker", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--world", type=Path, default=None)
    parser.add_argument("--publish", default=None, help="HOST:PORT of the 0MQ proxy's input")
    parser.add_argument("--relays", type=Path, default=None, help="the power-relay file the watchdog cuts")
    parser.add_argument("--store", default=None, help="Tiled API root of the run store (key: GRAINLOOP_TILED_API_KEY)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    world = load_world(args.world) if args.world else World()
    relays = PowerRelays(args.relays) if args.relays else None
    worker = build_worker(world, args.data_dir, args.publish, relays, args.store)
    ready, stop = threading.Event(), threading.Event()
    thread = threading.Thread(
        target=serve_commands, args=(worker, f"tcp://{args.host}:{args.port}", ready, stop), daemon=True
    )
    thread.start()
    if not ready.wait(10):
        raise SystemExit("worker: command socket did not bind within 10 s")
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.request_shutdown())
    print(f"worker ready pid={os.getpid()} port={args.port}", flush=True)
    try:
        worker.serve_forever()
    finally:
        stop.set()
        thread.join(2)
        worker.lab.close()
    return 0
