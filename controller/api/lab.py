"""grainloop's own read routes: who am I, the instruments' readings, the runs, the audit log."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException

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


@router.get("/audit")
def audit(ctx: Ctx, who: Observer, limit: int = 200, since_s: float | None = None) -> dict[str, Any]:
    return {"entries": ctx.audit_list(limit=limit, since_s=since_s)}
