"""`grainloop serve`: assemble the service from its settings and run it until SIGINT/SIGTERM.

The API process is the supervisor: it holds the manager (queue, campaigns, approvals, watchdog) and
starts the worker process, the 0MQ proxy, the analysis agents' processes (`analysis_agents`; they
follow the stream and publish analysis runs back to it and to the store), the stream monitor that
collects those runs for the API (`analysis_monitor`) and (unless `tiled_uri` names another) the
embedded Tiled run store the worker writes every run to. On shutdown it stops the agents and the
worker (a running plan is aborted, so its cleanup makes the instruments safe) before it exits.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI

from controller.api import campaigns as campaign_routes
from controller.api import lab as lab_routes
from controller.api.app import create_app
from controller.campaign.journal import Journal
from controller.manager.campaigns import ServiceCampaigns
from controller.manager.manager import Manager
from controller.manager.queue import PlanQueue
from controller.manager.safety import PowerRelays
from controller.manager.watchdog import WorkerSupervisor
from controller.service.analysis_agents import AnalysisAgents
from controller.service.analysis_monitor import AnalysisMonitor
from controller.service.config import ServiceSettings
from controller.service.context import ServiceContext
from controller.service.state import DbQueueStore, open_state
from controller.store.embedded import EmbeddedTiled
from controller.stream.proxy import start_proxy_process

log = logging.getLogger("grainloop.service")


@dataclass
class Service:
    settings: ServiceSettings
    ctx: ServiceContext
    app: FastAPI

    @property
    def api_url(self) -> str:
        return f"http://{self.settings.bind_host}:{self.settings.api_port}"


def build_service(settings: ServiceSettings) -> Service:
    """Everything wired, nothing started (see `Service.ctx.start`, done by the app's lifespan)."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    url = settings.resolved_state_url
    engine = open_state(url)
    relays = PowerRelays(settings.data_dir / "relays.json")
    worker_dir = settings.data_dir / "worker"
    embedded: EmbeddedTiled | None = None
    if settings.tiled_uri:
        store_uri, store_key = settings.tiled_uri, settings.tiled_api_key
    else:
        embedded = EmbeddedTiled(
            settings.data_dir / "tiled", settings.tiled_port, [worker_dir / "data"], settings.tiled_api_key
        )
        store_uri, store_key = embedded.uri, embedded.api_key
    worker = WorkerSupervisor(
        port=settings.worker_port,
        host=settings.bind_host,
        data_dir=worker_dir,
        world_file=settings.world_file,
        publish=f"{settings.bind_host}:{settings.zmq_in_port}",
        interval_s=settings.heartbeat_interval_s,
        timeout_s=settings.heartbeat_timeout_s,
        relays=relays,
        store=(store_uri, store_key),
    )
    manager = Manager(PlanQueue(DbQueueStore(engine)), worker)
    ctx = ServiceContext(settings, engine, manager, ServiceCampaigns(Journal(url), manager), relays, store_uri)
    ctx.campaigns.on_decision = ctx.metrics.decision.observe
    stream_in, stream_out = (f"{settings.bind_host}:{port}" for port in (settings.zmq_in_port, settings.zmq_out_port))
    ctx.analysis = AnalysisMonitor(
        stream_out,
        on_finished=ctx.metrics.analysis_finished,
        on_missed=lambda run_uid, n: ctx.metrics.stream_missed.inc(n),
    )
    if settings.agents:
        ctx.agents = AnalysisAgents(
            list(settings.agents),
            subscribe=stream_out,
            publish=stream_in,
            data_dir=ctx.agents_dir,
            store=(store_uri, store_key),
        )
    ctx.routers = [campaign_routes.router, lab_routes.router]
    app = create_app(ctx)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        if embedded is not None:
            embedded.start()  # before the worker, which writes every run to it
        proxy = start_proxy_process(stream_in, stream_out)
        if settings.open_environment:
            worker.start()
        ctx.start()
        try:
            yield
        finally:
            ctx.close()
            proxy.terminate()
            proxy.wait(10)
            if embedded is not None:
                embedded.close()

    app.router.lifespan_context = lifespan
    return Service(settings, ctx, app)


def run_service(settings: ServiceSettings) -> None:
    service = build_service(settings)
    url = service.api_url
    log.info("grainloop API on %s (docs %s/docs, metrics %s/metrics)", url, url, url)
    uvicorn.run(service.app, host=settings.bind_host, port=settings.api_port, log_level="info")
