"""Who is calling, and may they: the API key dependency and the role checks.

`Authorization: ApiKey <key>` (bluesky-queueserver-api sends exactly this). A missing or unknown key is
401; a known key whose role may not do the thing is 403. Roles: observer < operator < admin; `agent`
stands apart and is admitted only where a route names it (proposing recipes).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from controller.service.keys import Principal, Role


def context(request: Request) -> Any:
    """The service context the app was built with (`controller.api.app.create_app`)."""
    return request.app.state.ctx


def principal(request: Request) -> Principal:
    """The caller, or 401. Kept on `request.state` so the audit middleware can name it."""
    ctx = request.app.state.ctx
    who = ctx.authenticate(request.headers.get("authorization"))
    if who is None:
        raise HTTPException(status_code=401, detail="missing or invalid API key (Authorization: ApiKey <key>)")
    request.state.principal = who
    return who


def require(minimum: Role, *, agents: bool = False) -> Callable[..., Principal]:
    """A dependency admitting `minimum` and the roles above it (and agent principals if `agents`)."""

    def check(who: Annotated[Principal, Depends(principal)]) -> Principal:
        if who.role == Role.agent:
            if agents:
                return who
            raise HTTPException(status_code=403, detail="agent keys may only propose recipes")
        if not who.role.allows(minimum):
            raise HTTPException(status_code=403, detail=f"needs the {minimum.value} role; this key is {who.role.value}")
        return who

    return check


observer = require(Role.observer)
operator = require(Role.operator)
admin = require(Role.admin)

Ctx = Annotated[Any, Depends(context)]
Observer = Annotated[Principal, Depends(observer)]
Operator = Annotated[Principal, Depends(operator)]
Admin = Annotated[Principal, Depends(admin)]
