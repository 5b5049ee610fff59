"""The operator dashboard: the page at `/`, its static files, and the event stream at `/api/stream`.

EventSource cannot send an `Authorization` header, so the page first asks `GET /api/stream/token` (with
its API key in the header) for a stream token and opens `/api/stream?token=…`. A token is an HMAC of
the key's id and an expiry under a secret drawn when the app starts: it is good for `TOKEN_TTL_S` for
opening streams of that key (never for any other route), dies with the process, and the key behind it
is checked again (not revoked) at every connect. The API key itself never appears in a URL, and the
token is blanked in the access log.

The resume point comes from the `Last-Event-ID` header (EventSource's own reconnect) or, when the page
opens a new EventSource itself (with a fresh token), from `?last_event_id=`.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import time
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from controller.api.deps import Ctx, Observer
from controller.api.events import EventHub
from controller.service import keys
from controller.service.keys import Principal, Role

STATIC_DIR = Path(__file__).parent / "static"
TOKEN_TTL_S = 600.0
router = APIRouter(tags=["dashboard"])


class RedactStreamToken(logging.Filter):
    """Blank `token=` query values in uvicorn's access log lines."""

    pattern = re.compile(r"(token=)[^&\s]+")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(self.pattern.sub(r"\1…", a) if isinstance(a, str) else a for a in record.args)
        return True


def install(app: FastAPI) -> None:
    """Mount the static files, add the routes and give the app its one event hub and token secret."""
    app.state.events = EventHub(app.state.ctx)
    app.state.stream_secret = secrets.token_bytes(32)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    access = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, RedactStreamToken) for f in access.filters):
        access.addFilter(RedactStreamToken())


def _sign(secret: bytes, key_id: str, expires_s: int) -> str:
    return hmac.new(secret, f"{key_id}.{expires_s}".encode(), hashlib.sha256).hexdigest()[:40]


def make_token(secret: bytes, who: Principal, ttl_s: float = TOKEN_TTL_S) -> tuple[str, int]:
    expires_s = int(time.time() + ttl_s)
    return f"{who.key_id}.{expires_s}.{_sign(secret, who.key_id, expires_s)}", expires_s


def token_principal(request: Request, token: str) -> Principal | None:
    """The principal of a valid, unexpired stream token whose key is still active, else None."""
    key_id, _, rest = token.partition(".")
    expires, _, signature = rest.partition(".")
    if not (key_id and expires.isdigit() and signature) or int(expires) < time.time():
        return None
    if not hmac.compare_digest(signature, _sign(request.app.state.stream_secret, key_id, int(expires))):
        return None
    ctx = request.app.state.ctx
    row = next((k for k in keys.list_keys(ctx.engine) if k["key_id"] == key_id), None)
    if row is None or row["revoked_s"] is not None or row["role"] == Role.agent.value:
        return None
    return Principal(key_id=key_id, name=row["name"], role=Role(row["role"]))


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    """The dashboard page (it holds no data: everything comes from the API with the user's key)."""
    return FileResponse(STATIC_DIR / "dashboard" / "index.html", media_type="text/html")


@router.get("/api/stream/token")
def stream_token(request: Request, who: Observer) -> dict[str, Any]:
    """A token for opening `/api/stream` from a browser (EventSource cannot send headers)."""
    token, expires_s = make_token(request.app.state.stream_secret, who)
    return {"token": token, "expires_s": expires_s, "ttl_s": TOKEN_TTL_S}


@router.get("/api/stream/stats")
def stream_stats(request: Request, who: Observer) -> dict[str, Any]:
    """The producer's counters: connected clients, polls made, ids in the ring buffer."""
    return request.app.state.events.stats()


@router.get("/api/stream", response_class=StreamingResponse)
def stream(
    request: Request,
    ctx: Ctx,
    token: Annotated[str | None, Query(description="from /api/stream/token")] = None,
    last_event_id: Annotated[int | None, Query(description="resume after this id (else Last-Event-ID)")] = None,
) -> StreamingResponse:
    """Server-sent events: `snapshot`, `status`, `devices`, `queue`, `history`, `campaigns`,
    `observations`, `approvals`, `audit`, `analysis` (numbered) and `heartbeat` (not numbered)."""
    who = ctx.authenticate(request.headers.get("authorization"))
    if who is None and token:
        who = token_principal(request, token)
    if who is None:
        raise HTTPException(status_code=401, detail="missing or invalid API key or stream token")
    request.state.principal = who
    if who.role == Role.agent:
        raise HTTPException(status_code=403, detail="agent keys may only propose recipes")
    header = request.headers.get("last-event-id", "").strip()
    resume = int(header) if header.isdigit() else last_event_id
    hub: EventHub = request.app.state.events
    return StreamingResponse(
        hub.stream(resume),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
