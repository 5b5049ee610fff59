"""Everything the API process holds: settings, state database, manager and worker, metrics, lock, audit.

Routers reach it through `request.app.state.ctx`. The lock follows bluesky-queueserver: an operator
locks the environment and/or the queue with a lock key; while locked, calls that change the locked part
must carry that key (an admin may unlock without it). It is kept in the state database, so a restart
keeps the lab locked.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from fastapi import APIRouter, HTTPException
from sqlalchemy.engine import Engine

from controller.api.metrics import ServiceMetrics
from controller.manager.campaigns import ServiceCampaigns
from controller.manager.manager import Manager, ManagerError
from controller.manager.safety import PowerRelays
from controller.service import keys, state
from controller.service.analysis_agents import AnalysisAgents
from controller.service.analysis_monitor import AnalysisMonitor
from controller.service.config import ServiceSettings
from controller.service.keys import Principal, Role

log = logging.getLogger("grainloop.service")


class ServiceContext:
    def __init__(
        self,
        settings: ServiceSettings,
        engine: Engine,
        manager: Manager,
        campaigns: ServiceCampaigns,
        relays: PowerRelays | None = None,
        tiled_uri: str | None = None,
    ) -> None:
        self.settings, self.engine, self.manager, self.campaigns = settings, engine, manager, campaigns
        self.relays, self.tiled_uri = relays, tiled_uri
        self.plans_uid, self.devices_uid, self.lock_uid = (str(uuid.uuid4()) for _ in range(3))
        self.metrics = ServiceMetrics(self.metric_state)
        self.readings: dict[str, Any] = {}
        self.routers: list[APIRouter] = []
        self.analysis: AnalysisMonitor | None = None
        self.agents: AnalysisAgents | None = None
        self.agents_dir = settings.data_dir / "agents"
        self._stop = threading.Event()
        self._restarts_seen = 0
        manager.add_listener(lambda item, result: self.metrics.item_finished(result))

    # -- auth and audit ----------------------------------------------------------------------------
    def authenticate(self, header: str | None) -> Principal | None:
        return keys.authenticate(self.engine, header)

    def audit(self, *, principal: str, role: str | None, action: str, target: Any, outcome: str) -> None:
        state.audit_record(self.engine, principal=principal, role=role, action=action, target=target, outcome=outcome)

    def audit_list(self, limit: int = 200, since_s: float | None = None) -> list[dict[str, Any]]:
        return state.audit_list(self.engine, limit, since_s)

    def extra_routers(self) -> list[APIRouter]:
        return self.routers

    def run_links(self, uid: str) -> dict[str, str]:
        """The run's metadata in the Tiled API and its page in Tiled's browser UI (if a store is set)."""
        if not self.tiled_uri:
            return {}
        root = self.tiled_uri.rstrip("/")
        return {"tiled": f"{root}/metadata/{uid}", "tiled_ui": f"{root.removesuffix('/api/v1')}/ui/browse/{uid}"}

    # -- analyses ----------------------------------------------------------------------------------
    def analysis_events(self, after_seq: int = 0, limit: int | None = None) -> list[dict[str, Any]]:
        """Finished analysis runs seen on the stream (`AnalysisMonitor` records), images as API paths."""
        if self.analysis is None:
            return []
        return [self._with_image_urls(r) for r in self.analysis.events(after_seq, limit)]

    def analysis_image(self, uid: str, name: str) -> Path | None:
        """The file of figure `name` of analysis run `uid`, if it exists inside the agents' directory."""
        record = self.analysis.get(uid) if self.analysis is not None else None
        relative = (record or {}).get("images", {}).get(name)
        if not relative:
            return None
        root = self.agents_dir.resolve()
        path = (root / relative).resolve()
        return path if path.is_relative_to(root) and path.is_file() else None

    @staticmethod
    def _with_image_urls(record: dict[str, Any]) -> dict[str, Any]:
        uid = record["uid"]
        return {**record, "images": {name: f"/api/analyses/{uid}/{name}.png" for name in record.get("images", {})}}

    # -- status ------------------------------------------------------------------------------------
    def status(self) -> dict[str, Any]:
        lock = self.lock_info()
        return {
            "msg": "grainloop RE Manager",
            **self.manager.status(),
            "plans_allowed_uid": self.plans_uid,
            "plans_existing_uid": self.plans_uid,
            "devices_allowed_uid": self.devices_uid,
            "devices_existing_uid": self.devices_uid,
            "lock_info_uid": self.lock_uid,
            "lock": {"environment": lock["environment"], "queue": lock["queue"]},
            "locked_by": lock["user"],
            "run_list_uid": self.manager.queue.history_uid,
            "document_stream": f"tcp://{self.settings.bind_host}:{self.settings.zmq_out_port}",
            "task_results_uid": self.plans_uid,
        }

    def metric_state(self) -> dict[str, Any]:
        s = self.manager.status()
        lock = self.lock_info()
        readings = self.readings
        return {
            **s,
            "worker_up": self.manager.worker.ready,
            "locked": lock["environment"] or lock["queue"],
            "readings": readings,
            "devices_connected": {name: "error" not in r for name, r in readings.items()},
            "campaigns": self.campaign_summaries(),
            "analysis_agents": self.agents.status() if self.agents is not None else {},
        }

    def campaign_summaries(self) -> list[dict[str, Any]]:
        return [self.campaigns.summary(c) for s in ("running", "paused") for c in self.campaigns.journal_campaigns(s)]

    def device_names(self) -> list[str]:
        return sorted(self.readings) or ["mill", "furnace", "stem", "properties", "store", "interlock"]

    def poll_devices(self, interval_s: float = 1.0) -> None:
        """Keep `readings` fresh for /metrics and the devices route; count watchdog restarts."""
        while not self._stop.wait(interval_s):
            worker = self.manager.worker
            if worker.restarts > self._restarts_seen:
                self.metrics.worker_restarts.inc(worker.restarts - self._restarts_seen)
                self._restarts_seen = worker.restarts
            if not worker.ready:
                continue
            try:
                self.readings = worker.call("devices", timeout_s=2.0)["devices"]
            except Exception:
                self.readings = {}

    def tick_campaigns(self, interval_s: float = 0.25) -> None:
        while not self._stop.wait(interval_s):
            try:
                self.campaigns.tick()
            except Exception:  # logged; the next tick tries again
                log.exception("campaign tick failed")

    def start(self) -> None:
        self._stop.clear()
        threading.Thread(target=self.poll_devices, name="device-poll", daemon=True).start()
        threading.Thread(target=self.tick_campaigns, name="campaigns", daemon=True).start()
        self.manager.start()
        if self.analysis is not None:
            self.analysis.start()
        if self.agents is not None:
            self.agents.start()

    def close(self) -> None:
        self._stop.set()
        if self.agents is not None:
            self.agents.stop()
        if self.analysis is not None:
            self.analysis.stop()
        self.manager.close()

    # -- lock --------------------------------------------------------------------------------------
    def lock_info(self) -> dict[str, Any]:
        row = state.lock_get(self.engine)
        if row is None:
            return {"environment": False, "queue": False, "user": None, "note": None, "time": None}
        return {
            "environment": bool(row.get("environment")),
            "queue": bool(row.get("queue")),
            "user": row.get("locked_by"),
            "note": row.get("note"),
            "time": row.get("since_s"),
        }

    def lock(self, who: Principal, environment: bool, queue: bool, key: str | None, note: str | None) -> dict:
        if not (environment or queue):
            raise ManagerError("lock what? set environment and/or queue")
        if not key:
            raise ManagerError("a lock needs a lock_key")
        if self.lock_info()["user"] is not None:
            raise ManagerError(f"already locked by {self.lock_info()['user']}")
        state.lock_set(
            self.engine,
            locked_by=who.name,
            note=note,
            key_hash=keys.hash_lock_key(key),
            environment=environment,
            queue=queue,
            since_s=time.time(),
        )
        self.lock_uid = str(uuid.uuid4())
        return self.lock_info()

    def unlock(self, who: Principal, key: str | None) -> dict:
        row = state.lock_get(self.engine)
        if row is None:
            raise ManagerError("not locked")
        if not (who.role == Role.admin or (key and keys.verify_lock_key(key, row["key_hash"]))):
            raise ManagerError("wrong lock_key (an admin may unlock without one)")
        state.lock_clear(self.engine)
        self.lock_uid = str(uuid.uuid4())
        return self.lock_info()

    def check_lock(self, what: str, key: str | None) -> None:
        row = state.lock_get(self.engine)
        if row is None or not row.get(what):
            return
        if key and keys.verify_lock_key(key, row["key_hash"]):
            return
        raise HTTPException(
            status_code=423, detail=f"the {what} is locked by {row.get('locked_by')}: {row.get('note') or ''}"
        )
