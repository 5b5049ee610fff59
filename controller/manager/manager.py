"""The manager: runs the queue through the worker, records history, and tells listeners what finished.

One thread (`Manager.start`) ticks every 0.1 s: it collects finished items from the worker's status
(acknowledging each once recorded, so none is lost or counted twice), and when the queue is running and
the worker idle, sends the next item. Control calls (pause, resume, stop, abort, halt) go straight to the
worker. A failed, stopped, aborted or halted item stops the queue, as in bluesky-queueserver — except a
campaign's experiment (`meta.campaign_id`): a failed experiment is data, and the campaign decides.

If the worker is lost while an item runs, that item is recorded as failed ("worker lost …") and the
listeners hear of it like any other result.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from controller.manager.queue import PlanQueue, QueueError
from controller.manager.watchdog import WorkerSupervisor
from controller.worker.plans import validate_item
from controller.worker.protocol import WorkerUnavailableError

log = logging.getLogger("grainloop.manager")
Listener = Callable[[dict[str, Any], dict[str, Any]], None]
CONTROL = ("resume", "stop", "abort", "halt")


class ManagerError(RuntimeError):
    """A request the manager refuses in its current state (409 at the API)."""


class Manager:
    def __init__(self, queue: PlanQueue, worker: WorkerSupervisor, tick_s: float = 0.1) -> None:
        self.queue, self.worker, self.tick_s = queue, worker, tick_s
        self.lock = threading.RLock()
        self.running_item: dict[str, Any] | None = None
        self.queue_running = False
        self.stop_pending = False
        self.listeners: list[Listener] = []
        self.results_seen: set[str] = set()
        self.plans_by_status: dict[str, int] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        worker.on_lost = self._worker_lost

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="manager", daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self.worker.stop()

    def add_listener(self, listener: Listener) -> None:
        self.listeners.append(listener)

    # -- state -----------------------------------------------------------------------------------
    def manager_state(self) -> str:
        st = self.worker.status
        if self.worker.wanted and not self.worker.ready:
            return "creating_environment"
        if st is not None and st.get("re_state") in ("paused", "pausing"):
            return "paused"
        if self.queue_running or self.running_item is not None:
            return "executing_queue"
        return "idle"

    def status(self) -> dict[str, Any]:
        st = self.worker.status or {}
        with self.lock:
            running = self.running_item
            return {
                "manager_state": self.manager_state(),
                "queue_running": self.queue_running,
                "queue_stop_pending": self.stop_pending,
                "items_in_queue": len(self.queue.items),
                "items_in_history": len(self.queue.history),
                "running_item_uid": running["item_uid"] if running else None,
                "plan_queue_uid": self.queue.queue_uid,
                "plan_history_uid": self.queue.history_uid,
                "worker_environment_exists": self.worker.wanted and self.worker.ready,
                "worker_environment_state": ("executing_plan" if running else "idle")
                if self.worker.ready
                else "closed",
                "worker_pid": st.get("pid"),
                "worker_restarts": self.worker.restarts,
                "re_state": st.get("re_state"),
                "suspended": bool(st.get("suspended", False)),
                "suspend_reason": st.get("suspend_reason"),
                "pause_pending": st.get("re_state") == "pausing",
            }

    # -- queue control ---------------------------------------------------------------------------
    def validate(self, item: Mapping[str, Any]) -> None:
        if item.get("item_type", "plan") != "plan":
            raise QueueError(f"only plan items are supported, got item_type {item.get('item_type')!r}")
        validate_item(str(item.get("name")), item.get("args"), item.get("kwargs"))

    def queue_start(self) -> None:
        with self.lock:
            if not self.worker.wanted:
                raise ManagerError("the worker environment is closed; open it first")
            if self.queue_running:
                raise ManagerError("the queue is already running")
            self.queue_running, self.stop_pending = True, False

    def queue_stop(self) -> None:
        with self.lock:
            if not self.queue_running:
                raise ManagerError("the queue is not running")
            self.stop_pending = True

    def queue_stop_cancel(self) -> None:
        with self.lock:
            self.stop_pending = False

    def environment_open(self) -> None:
        if self.worker.wanted:
            raise ManagerError("the worker environment is already open")
        self.worker.start()

    def environment_close(self) -> None:
        with self.lock:
            if self.running_item is not None:
                raise ManagerError("a plan is running; stop it before closing the environment")
            self.queue_running = False
        self.worker.stop()

    def control(self, what: str, option: str | None = None) -> None:
        """pause (option deferred|immediate) / resume / stop / abort / halt, passed to the worker."""
        if what != "pause" and what not in CONTROL:
            raise ValueError(f"unknown control {what!r}")
        params = {"option": option or "deferred"} if what == "pause" else {}
        try:
            self.worker.call(what, **params)
        except WorkerUnavailableError as exc:
            raise ManagerError(f"worker unavailable: {exc}") from exc
        except RuntimeError as exc:
            raise ManagerError(str(exc)) from exc

    def sim_interlock(self, tripped: bool) -> dict[str, Any]:
        """Trip or reset the site interlock of a simulated lab (the worker refuses on real hardware)."""
        try:
            return self.worker.call("sim_interlock", tripped=tripped)
        except WorkerUnavailableError as exc:
            raise ManagerError(f"worker unavailable: {exc}") from exc
        except RuntimeError as exc:
            raise ManagerError(str(exc)) from exc

    # -- the loop ----------------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.wait(self.tick_s):
            try:
                self.tick()
            except Exception:  # the loop must survive anything one tick meets
                log.exception("manager tick failed")

    def tick(self) -> None:
        st = self.worker.status
        if st is None:
            return
        done = [r for r in st.get("completed", []) if r["item_uid"]]
        for result in done:
            self._finish(result)
        if done:
            with contextlib.suppress(WorkerUnavailableError, RuntimeError):  # else acknowledged next tick
                self.worker.call("ack", item_uids=[r["item_uid"] for r in done])
            return
        with self.lock:
            if not self.queue_running or self.running_item is not None:
                return
            if st.get("running_item") is not None or st.get("re_state") != "idle":
                return
            if self.stop_pending or not self.queue.items:
                self.queue_running, self.stop_pending = False, False
                return
            item = self.queue.pop_front()
            assert item is not None
            self.running_item = item
        try:
            self.worker.call("run", item=item)
        except (WorkerUnavailableError, RuntimeError) as exc:
            log.warning("worker refused item %s: %s", item["item_uid"], exc)
            with self.lock:
                self.running_item = None
                self.queue.push_front(item)
                self.queue_running = False

    def _finish(self, result: dict[str, Any]) -> None:
        uid = result["item_uid"]
        with self.lock:
            if uid in self.results_seen:
                return
            self.results_seen.add(uid)
            item = self.running_item if self.running_item and self.running_item["item_uid"] == uid else None
            if item is None:
                item = {"item_uid": uid, "item_type": "plan", "name": "unknown"}
            else:
                self.running_item = None
            self.queue.record(item, result)
            status = result.get("exit_status", "failed")
            self.plans_by_status[status] = self.plans_by_status.get(status, 0) + 1
            is_experiment = bool((item.get("meta") or {}).get("campaign_id"))
            if status != "completed" and not is_experiment:
                self.queue_running = False
        for listener in self.listeners:
            try:
                listener(copy.deepcopy(item), copy.deepcopy(result))
            except Exception:
                log.exception("a listener failed on item %s", uid)

    def _worker_lost(self, reason: str) -> None:
        with self.lock:
            item = self.running_item
        if item is not None:
            now = time.time()
            self._finish(
                {
                    "item_uid": item["item_uid"],
                    "exit_status": "failed",
                    "msg": f"worker lost: {reason}",
                    "traceback": "",
                    "run_uids": [],
                    "time_start": now,
                    "time_stop": now,
                }
            )
