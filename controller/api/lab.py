"""grainloop's own read routes: who am I, the instruments' readings, the runs, the analyses, the audit log."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse

from controller.api.deps import Ctx, Observer

router = APIRouter(prefix="/api", tags=["lab"])


@router.get("/auth/whoami")
def whoami(who: Observer) -> dict[str, Any]:
    return {"name": who.name, "role": who.role.value, "key_id": who.key_id}


@router.get("/devices")
def devices(ctx: Ctx, who: Observer) -> dict[str, Any]:
    """The last reading of every instrument (polled from the worker once a second); read-only."""
    if not ctx.readings:
        raise HTTPException(status_code=503, detail="no readings: the worker is not running")
    return {"devices": ctx.readings, "relays": ctx.relays.state() if ctx.relays else None}


@router.get("/runs")
def runs(ctx: Ctx, who: Observer, campaign_id: str | None = None, limit: int = 100) -> dict[str, Any]:
    """Run uids from the queue's history (newest first), each with its Tiled links (API metadata, browser UI)."""
    out = []
    for entry in reversed(ctx.manager.queue.get_history()):
        meta = entry.get("meta") or {}
        item_campaign = meta.get("campaign_id") or (entry.get("kwargs") or {}).get("campaign_id")
        if campaign_id is not None and item_campaign != campaign_id:
            continue
        for uid in entry.get("result", {}).get("run_uids", []):
            out.append(
                {
                    "uid": uid,
                    "item_uid": entry["item_uid"],
                    "plan": entry.get("name"),
                    **ctx.run_links(uid),
                    **meta,
                }
            )
            if len(out) >= limit:
                return {"runs": out, "tiled_uri": ctx.tiled_uri}
    return {"runs": out, "tiled_uri": ctx.tiled_uri}


@router.get("/analyses")
def analyses(
    ctx: Ctx,
    who: Observer,
    after_seq: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    campaign_id: str | None = None,
    parent_uid: str | None = None,
) -> dict[str, Any]:
    """Analysis runs the agents published (newest last): result, figures, latency, Tiled links.

    `after_seq` returns only newer ones (each record's `seq`); the API process keeps the last 200 seen on
    the stream since it started, and the run store keeps them all.
    """
    out = []
    for record in ctx.analysis_events(after_seq):
        if campaign_id is not None and record.get("campaign_id") != campaign_id:
            continue
        if parent_uid is not None and record.get("parent_uid") != parent_uid:
            continue
        out.append({**record, **ctx.run_links(record["uid"])})
    agents = ctx.agents.status() if ctx.agents is not None else {}
    return {"analyses": out[-limit:], "agents": agents}


@router.get("/analyses/{uid}/{name}.png", response_class=FileResponse)
def analysis_image(uid: str, name: str, ctx: Ctx, who: Observer) -> FileResponse:
    """A figure of an analysis run: `overlay` (segmentation), `ipf` and `misorientation` (orientation)."""
    path = ctx.analysis_image(uid, name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no figure {name!r} for analysis run {uid}")
    return FileResponse(path, media_type="image/png")


@router.get("/audit")
def audit(ctx: Ctx, who: Observer, limit: int = 200, since_s: float | None = None) -> dict[str, Any]:
    return {"entries": ctx.audit_list(limit=limit, since_s=since_s)}
