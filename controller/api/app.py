"""The FastAPI application: routers, the audit trail of every mutating call, latency metrics, `/metrics`.

Every request that is not a GET/HEAD/OPTIONS is written to the audit log after it is answered — with the
principal the auth dependency resolved (or "anonymous"), the route, the status code and, for refusals,
the reason — so a refused attempt is as visible as a successful one.
"""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from controller.api import dashboard, queueserver, sim

MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def create_app(ctx: Any) -> FastAPI:
    """The API over a service context (`controller.service.context.ServiceContext`)."""
    app = FastAPI(
        title="grainloop",
        version="0.1.0",
        summary="Autonomous lab controller: queue, RunEngine, campaigns, approvals, runs, metrics.",
        docs_url="/docs",
        openapi_url="/openapi.json",
    )
    app.state.ctx = ctx
    app.include_router(queueserver.router)
    for router in ctx.extra_routers():
        app.include_router(router)
    app.include_router(sim.router)
    dashboard.install(app)  # the page at /, its static files and the event stream /api/stream

    @app.middleware("http")
    async def audit_and_time(request: Request, call_next: Any) -> Response:
        t0 = time.perf_counter()
        body = await request.body() if request.method in MUTATING else b""
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        ctx.metrics.http.labels(request.method, path, str(response.status_code)).observe(time.perf_counter() - t0)
        if request.method in MUTATING:
            who = getattr(request.state, "principal", None)
            ctx.audit(
                principal=who.name if who else "anonymous",
                role=who.role.value if who else None,
                action=f"{request.method} {request.url.path}",
                target=_target(body),
                outcome=str(response.status_code),
            )
        return response

    @app.get("/metrics", include_in_schema=False)
    def metrics() -> Response:
        return Response(generate_latest(ctx.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> PlainTextResponse:
        return PlainTextResponse("ok")

    return app


def _target(body: bytes) -> dict[str, Any] | None:
    """What a mutating call was about, from its body (at most 4 kB kept; secrets never are)."""
    if not body:
        return None
    try:
        data = json.loads(body[:4096])
    except ValueError:
        return {"raw_bytes": len(body)}
    if isinstance(data, dict):
        data.pop("lock_key", None)
    return data if isinstance(data, dict) else {"value": data}
