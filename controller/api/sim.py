"""Fault injection on a simulated lab, for engineers and tests: trip and reset the site interlock.

`make_sample` installs a suspender on the site interlock (`controller/plans/make_sample.py`); tripping
it here holds the running plan exactly as a real interlock would (`suspended: true` in the status,
`re_state` still `running`), and resetting it lets the plan resume. Admin only, audited like every
POST; a worker whose lab is not simulated refuses (409): a real interlock is hardware.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field

from controller.api.deps import Admin, Ctx
from controller.manager.manager import ManagerError

router = APIRouter(prefix="/api/sim", tags=["simulated lab"])


class InterlockBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tripped: bool = Field(description="true trips the simulated site interlock, false resets it")


@router.post("/interlock")
def sim_interlock(body: InterlockBody, ctx: Ctx, who: Admin) -> dict[str, Any]:
    try:
        reply = ctx.manager.sim_interlock(body.tripped)
    except ManagerError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None
    return {"success": True, "msg": "", "interlock": reply["interlock"]}
