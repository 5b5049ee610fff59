"""The bluesky-httpserver REST map, so that `bluesky_queueserver_api.http.REManagerAPI` drives grainloop.

Paths, bodies and response shapes follow what REManagerAPI sends and reads (`success`, `msg`, the change
tokens `plan_queue_uid` / `plan_history_uid`, …). Where bluesky-httpserver answers a refused request
with `success: false` and 200, grainloop answers with an HTTP error the client raises on just the same:
422 for a malformed body (with pydantic's field errors), 409 for an unsafe recipe (naming the envelope
rule) or a request the manager's state refuses, 403 for a role that may not.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from controller.api.deps import Ctx, Observer, Operator
from controller.manager.adjudicator import envelope_violation
from controller.manager.manager import ManagerError
from controller.manager.queue import QueueError
from controller.service.keys import Principal, Role
from controller.worker.plans import HEATS_OR_SPINS, PlanItemError, describe_plans, validate_item

router = APIRouter(prefix="/api", tags=["queue (bluesky-httpserver map)"])
Position = int | Literal["front", "back"]


class PlanItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    item_type: Literal["plan"] = "plan"
    name: str = Field(min_length=1)
    args: list[Any] = Field(default_factory=list)
    kwargs: dict[str, Any] = Field(default_factory=dict)
    meta: dict[str, Any] = Field(default_factory=dict)
    item_uid: str | None = None
    user: str | None = None
    user_group: str | None = None


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str | None = None
    user_group: str | None = None
    lock_key: str | None = None


class ItemAdd(_Body):
    item: PlanItem
    pos: Position | None = None
    before_uid: str | None = None
    after_uid: str | None = None


class ItemAddBatch(_Body):
    items: list[PlanItem]
    pos: Position | None = None
    before_uid: str | None = None
    after_uid: str | None = None


class ItemRef(_Body):
    pos: Position | None = None
    uid: str | None = None


class ItemMove(ItemRef):
    pos_dest: Position | None = None
    before_uid: str | None = None
    after_uid: str | None = None


class ItemUpdate(_Body):
    item: PlanItem
    replace: bool | None = None


class Pause(_Body):
    option: Literal["deferred", "immediate"] = "deferred"


class LockBody(_Body):
    environment: bool = False
    queue: bool = False
    note: str | None = None


def ok(**extra: Any) -> dict[str, Any]:
    return {"success": True, "msg": "", **extra}


def checked_item(item: PlanItem, who: Principal) -> dict[str, Any]:
    """The item as the queue stores it, or 422/409/403 saying why not."""
    data = item.model_dump(exclude_none=True)
    if item.name in HEATS_OR_SPINS and not who.role.allows(Role.operator):
        raise HTTPException(status_code=403, detail=f"{item.name} heats or spins: it needs an operator or admin")
    recipe = item.kwargs.get("recipe")
    if isinstance(recipe, dict):
        rule = envelope_violation(recipe)
        if rule is not None:
            raise HTTPException(status_code=409, detail=f"unsafe recipe: {rule}")
    try:
        validate_item(item.name, item.args, item.kwargs)
    except PlanItemError as exc:
        detail = [{**e, "loc": ["body", "item", *e["loc"]]} for e in exc.errors] or str(exc)
        raise HTTPException(status_code=422, detail=detail) from None
    data.pop("item_uid", None)
    data["user"] = who.name
    data["user_group"] = who.role.value
    return data


def refused(exc: Exception) -> HTTPException:
    return HTTPException(status_code=409, detail=str(exc))


@router.get("/ping")
@router.get("/status")
def status(ctx: Ctx, who: Observer) -> dict[str, Any]:
    return ctx.status()


@router.get("/queue/get")
def queue_get(ctx: Ctx, who: Observer) -> dict[str, Any]:
    m = ctx.manager
    with m.lock:
        return ok(items=m.queue.get(), running_item=dict(m.running_item or {}), plan_queue_uid=m.queue.queue_uid)


@router.post("/queue/item/add")
def item_add(body: ItemAdd, ctx: Ctx, who: Operator) -> dict[str, Any]:
    ctx.check_lock("queue", body.lock_key)
    data = checked_item(body.item, who)
    try:
        item, _ = ctx.manager.queue.add(data, body.pos, body.before_uid, body.after_uid)
    except QueueError as exc:
        raise refused(exc) from None
    return ok(item=item, qsize=len(ctx.manager.queue.items))


@router.post("/queue/item/add/batch")
def item_add_batch(body: ItemAddBatch, ctx: Ctx, who: Operator) -> dict[str, Any]:
    ctx.check_lock("queue", body.lock_key)
    checked = [checked_item(item, who) for item in body.items]  # all or nothing
    added = []
    before, after, pos = body.before_uid, body.after_uid, body.pos
    try:
        for data in checked:
            item, _ = ctx.manager.queue.add(data, pos, before, after)
            added.append(item)
            before, after, pos = None, item["item_uid"], None
    except QueueError as exc:
        raise refused(exc) from None
    results = [{"success": True, "msg": ""} for _ in added]
    return ok(items=added, results=results, qsize=len(ctx.manager.queue.items))


@router.get("/queue/item/get")
def item_get(ctx: Ctx, who: Observer, body: Annotated[ItemRef | None, Body()] = None) -> dict[str, Any]:
    body = body or ItemRef()
    try:
        return ok(item=ctx.manager.queue.get_item(body.pos, body.uid))
    except QueueError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None


@router.post("/queue/item/remove")
def item_remove(body: ItemRef, ctx: Ctx, who: Operator) -> dict[str, Any]:
    ctx.check_lock("queue", body.lock_key)
    try:
        item = ctx.manager.queue.remove(body.pos, body.uid)
    except QueueError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return ok(item=item, qsize=len(ctx.manager.queue.items))


@router.post("/queue/item/move")
def item_move(body: ItemMove, ctx: Ctx, who: Operator) -> dict[str, Any]:
    ctx.check_lock("queue", body.lock_key)
    try:
        item = ctx.manager.queue.move(body.pos, body.uid, body.pos_dest, body.before_uid, body.after_uid)
    except QueueError as exc:
        raise refused(exc) from None
    return ok(item=item, qsize=len(ctx.manager.queue.items))


@router.post("/queue/item/update")
def item_update(body: ItemUpdate, ctx: Ctx, who: Operator) -> dict[str, Any]:
    ctx.check_lock("queue", body.lock_key)
    if body.item.item_uid is None:
        raise HTTPException(status_code=422, detail=[{"loc": ["body", "item", "item_uid"], "msg": "required"}])
    data = {**checked_item(body.item, who), "item_uid": body.item.item_uid}
    try:
        item = ctx.manager.queue.update(data, replace=bool(body.replace))
    except QueueError as exc:
        raise HTTPException(status_code=404, detail=str(exc)) from None
    return ok(item=item, qsize=len(ctx.manager.queue.items))


@router.post("/queue/clear")
def queue_clear(ctx: Ctx, who: Operator, body: _Body | None = None) -> dict:
    ctx.check_lock("queue", body.lock_key if body else None)
    ctx.manager.queue.clear()
    return ok()


def _manager_call(fn: Any, *args: Any) -> dict[str, Any]:
    try:
        fn(*args)
    except ManagerError as exc:
        raise refused(exc) from None
    return ok()


@router.post("/queue/start")
def queue_start(ctx: Ctx, who: Operator, body: _Body | None = None) -> dict:
    ctx.check_lock("environment", body.lock_key if body else None)
    return _manager_call(ctx.manager.queue_start)


@router.post("/queue/stop")
def queue_stop(ctx: Ctx, who: Operator, body: _Body | None = None) -> dict:
    ctx.check_lock("environment", body.lock_key if body else None)
    return _manager_call(ctx.manager.queue_stop)


@router.post("/queue/stop/cancel")
def queue_stop_cancel(ctx: Ctx, who: Operator, body: _Body | None = None) -> dict:
    ctx.check_lock("environment", body.lock_key if body else None)
    return _manager_call(ctx.manager.queue_stop_cancel)


@router.get("/history/get")
def history_get(ctx: Ctx, who: Observer) -> dict[str, Any]:
    q = ctx.manager.queue
    return ok(items=q.get_history(), plan_history_uid=q.history_uid)


@router.post("/history/clear")
def history_clear(ctx: Ctx, who: Operator, body: _Body | None = None) -> dict:
    ctx.check_lock("queue", body.lock_key if body else None)
    ctx.manager.queue.clear_history()
    return ok()


@router.post("/environment/open")
def environment_open(ctx: Ctx, who: Operator, body: _Body | None = None) -> dict:
    ctx.check_lock("environment", body.lock_key if body else None)
    return _manager_call(ctx.manager.environment_open)


@router.post("/environment/close")
@router.post("/environment/destroy")
def environment_close(ctx: Ctx, who: Operator, body: _Body | None = None) -> dict:
    ctx.check_lock("environment", body.lock_key if body else None)
    return _manager_call(ctx.manager.environment_close)


@router.post("/re/pause")
def re_pause(ctx: Ctx, who: Operator, body: Pause | None = None) -> dict:
    body = body or Pause()
    ctx.check_lock("environment", body.lock_key)
    return _manager_call(ctx.manager.control, "pause", body.option)


def _control(what: str) -> Any:
    def route(ctx: Ctx, who: Operator, body: _Body | None = None) -> dict:
        ctx.check_lock("environment", body.lock_key if body else None)
        return _manager_call(ctx.manager.control, what)

    route.__name__ = f"re_{what}"
    return route


for _what in ("resume", "stop", "abort", "halt"):
    router.post(f"/re/{_what}", name=f"re_{_what}")(_control(_what))


@router.get("/plans/allowed")
@router.get("/plans/existing")
def plans_allowed(ctx: Ctx, who: Observer) -> dict[str, Any]:
    plans = describe_plans()
    return ok(
        plans_allowed=plans, plans_existing=plans, plans_allowed_uid=ctx.plans_uid, plans_existing_uid=ctx.plans_uid
    )


@router.get("/devices/allowed")
@router.get("/devices/existing")
def devices_allowed(ctx: Ctx, who: Observer) -> dict[str, Any]:
    devices = {name: {"classname": name, "is_readable": True, "is_movable": False} for name in ctx.device_names()}
    return ok(
        devices_allowed=devices,
        devices_existing=devices,
        devices_allowed_uid=ctx.devices_uid,
        devices_existing_uid=ctx.devices_uid,
    )


@router.post("/lock")
def lock(body: LockBody, ctx: Ctx, who: Operator) -> dict[str, Any]:
    try:
        info = ctx.lock(who, body.environment, body.queue, body.lock_key, body.note)
    except ManagerError as exc:
        raise refused(exc) from None
    return ok(lock_info=info, lock_info_uid=ctx.lock_uid)


@router.post("/unlock")
def unlock(body: _Body, ctx: Ctx, who: Operator) -> dict[str, Any]:
    try:
        info = ctx.unlock(who, body.lock_key)
    except ManagerError as exc:
        raise refused(exc) from None
    return ok(lock_info=info, lock_info_uid=ctx.lock_uid)


@router.get("/lock/info")
def lock_info(ctx: Ctx, who: Observer) -> dict[str, Any]:
    return ok(lock_info=ctx.lock_info(), lock_info_uid=ctx.lock_uid)
