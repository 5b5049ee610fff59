"""grainloop's own routes: campaigns, proposals and approvals.

Campaigns are created from a `CampaignConfig` (the service's lab stands in for its `world`), started,
paused, resumed and stopped by operators. Recipes arrive three ways, and every one passes the
adjudicator's safety envelope (409 naming the rule) before pydantic's checks (422 with field errors):
the campaign's own agent, an operator's injection (queued at once), and an agent principal's proposal
(in `suggest` mode it waits for approval; agent keys can do nothing else). An approval may approve an
edited recipe, checked exactly as an injected one. `GET /campaigns/{id}/model` is the Bayesian agent's
view (`agents.bayesian.slices`), cached per campaign per observation count.
"""

from __future__ import annotations

import threading
import time
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from fastapi.responses import FileResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from agents.bayesian import BayesianAgent
from agents.bayesian.slices import ModelViewError, model_view, pareto_view
from controller.api.deps import Ctx, Observer, Operator, require
from controller.campaign.agent_factory import restore_agent
from controller.campaign.config import CampaignConfig
from controller.campaign.report import plot_campaign
from controller.campaign.results import campaign_dir
from controller.manager.adjudicator import envelope_violation
from controller.manager.campaigns import CampaignError
from controller.recipe import Recipe
from controller.service.keys import Principal, Role

router = APIRouter(prefix="/api", tags=["campaigns and approvals"])
Proposer = Annotated[Principal, Depends(require(Role.operator, agents=True))]
CampaignReader = Annotated[Principal, Depends(require(Role.observer, agents=True))]
"""Observers and up, and agent principals: an agent reads what it proposes from."""
RECIPE_BODY = Body(description="a Recipe (see the schema of /api/recipe/schema)")


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")

    note: str | None = Field(None, max_length=2000)
    recipe: dict[str, Any] | None = Field(None, description="approve an edited recipe instead of the proposal")


class Proposal(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipe: dict[str, Any]
    reasoning: dict[str, Any] = Field(default_factory=dict, description="predicted value ± σ, acquisition value …")


def checked_recipe(data: dict[str, Any]) -> Recipe:
    """409 if outside the safety envelope, 422 with field errors if not a valid recipe."""
    rule = envelope_violation(data)
    if rule is not None:
        raise HTTPException(status_code=409, detail=f"unsafe recipe: {rule}")
    try:
        return Recipe.model_validate(data)
    except ValidationError as exc:
        detail = [{"loc": ["body", *map(str, e["loc"])], "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
        raise HTTPException(status_code=422, detail=detail) from None


def _campaign_call(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except CampaignError as exc:
        status = 404 if str(exc).startswith("no campaign") else 409
        raise HTTPException(status_code=status, detail=str(exc)) from None


@router.get("/recipe/schema")
def recipe_schema(who: CampaignReader) -> dict[str, Any]:
    return Recipe.model_json_schema()


@router.post("/campaigns", status_code=201)
def campaign_create(config: CampaignConfig, ctx: Ctx, who: Operator) -> dict[str, Any]:
    campaign_id = ctx.campaigns.create(config)
    return ctx.campaigns.summary(campaign_id)


@router.get("/campaigns")
def campaign_list(ctx: Ctx, who: CampaignReader) -> dict[str, Any]:
    ids = [
        c for s in ("created", "running", "paused", "finished", "stopped") for c in ctx.campaigns.journal_campaigns(s)
    ]
    return {"campaigns": [ctx.campaigns.summary(c) for c in ids]}


@router.get("/campaigns/{campaign_id}")
def campaign_get(campaign_id: str, ctx: Ctx, who: CampaignReader) -> dict[str, Any]:
    return _campaign_call(ctx.campaigns.summary, campaign_id)


@router.get("/campaigns/{campaign_id}/observations")
def campaign_observations(campaign_id: str, ctx: Ctx, who: CampaignReader) -> dict[str, Any]:
    _campaign_call(ctx.campaigns.summary, campaign_id)
    rows = ctx.campaigns.journal.steps(campaign_id)
    return {"campaign_id": campaign_id, "steps": [r.__dict__ for r in rows]}


@router.get("/campaigns/{campaign_id}/config")
def campaign_config(campaign_id: str, ctx: Ctx, who: CampaignReader) -> dict[str, Any]:
    """The campaign's `CampaignConfig` (the dashboard draws best-so-far with its `min_tc_k`)."""
    config, _ = _campaign_call(ctx.campaigns.config, campaign_id)
    return {"campaign_id": campaign_id, "config": config.model_dump(exclude={"world"})}


@router.get("/campaigns/{campaign_id}/best")
def campaign_best(campaign_id: str, ctx: Ctx, who: CampaignReader) -> dict[str, Any]:
    summary = _campaign_call(ctx.campaigns.summary, campaign_id)
    return {"campaign_id": campaign_id, "best": summary["best"]}


class ModelViews:
    """The last model view of each campaign, keyed by its observation count; one computation at a time each."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.views: dict[str, tuple[int, dict[str, Any]]] = {}
        self.locks: dict[str, threading.Lock] = {}

    def lock_of(self, campaign_id: str) -> threading.Lock:
        with self.lock:
            return self.locks.setdefault(campaign_id, threading.Lock())


def _model_views(request: Request) -> ModelViews:
    views = getattr(request.app.state, "model_views", None)
    if views is None:
        views = request.app.state.model_views = ModelViews()
    return views


def _observed(agent_state: dict[str, Any] | None) -> int:
    """Trials of a checkpoint that ended (completed or failed): what the model is fitted to."""
    trials = ((agent_state or {}).get("ledger") or {}).get("trials") or []
    return sum(1 for t in trials if t.get("status") in ("completed", "failed"))


@router.get("/campaigns/{campaign_id}/model")
def campaign_model(campaign_id: str, request: Request, ctx: Ctx, who: CampaignReader) -> dict[str, Any]:
    """The Bayesian agent's view: posterior mean ± σ and acquisition along each recipe axis through the
    incumbent (`agents.bayesian.slices`), and the Pareto set for a multi-objective agent.

    Computed from the agent's journalled checkpoint (never the live agent) once per observation count and
    cached, so polling it is cheap. 404: unknown campaign, or its agent has no model (sobol, random);
    409: fewer than two successful observations.
    """
    config, _ = _campaign_call(ctx.campaigns.config, campaign_id)
    if config.agent != "bayes":
        raise HTTPException(
            status_code=404, detail=f"campaign {campaign_id}'s agent is {config.agent}: it has no model"
        )
    views = _model_views(request)
    with views.lock_of(campaign_id):  # one fit per campaign at a time; later callers get the cached view
        state = ctx.campaigns.journal.campaign(campaign_id)["agent_state"]
        observed = _observed(state)
        cached = views.views.get(campaign_id)
        if cached is not None and cached[0] == observed:
            return {**cached[1], "cached": True}
        if not state:
            raise HTTPException(status_code=409, detail="no model yet: the agent has not proposed anything")
        agent = restore_agent(config, state)
        assert isinstance(agent, BayesianAgent)
        try:
            view = model_view(agent)
        except ModelViewError as exc:
            raise HTTPException(status_code=409, detail=f"no model yet: {exc}") from None
        view = {"campaign_id": campaign_id, "observations": observed, "computed_s": time.time(), **view}
        view["pareto"] = pareto_view(agent) if agent.goals.multi else None
        views.views[campaign_id] = (observed, view)
    return {**view, "cached": False}


@router.get("/campaigns/{campaign_id}/report.png", response_class=FileResponse)
def campaign_report(campaign_id: str, ctx: Ctx, who: Observer) -> FileResponse:
    config, _ = _campaign_call(ctx.campaigns.config, campaign_id)
    rows = ctx.campaigns.journal.steps(campaign_id)
    out = campaign_dir(ctx.settings.data_dir, campaign_id) / "report.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    plot_campaign(rows, out, min_tc_k=config.min_tc_k)
    return FileResponse(out, media_type="image/png")


@router.post("/campaigns/{campaign_id}/recipes", status_code=201)
def campaign_inject(
    campaign_id: str, ctx: Ctx, who: Operator, recipe: Annotated[dict[str, Any], RECIPE_BODY]
) -> dict[str, Any]:
    step = _campaign_call(ctx.campaigns.inject, campaign_id, checked_recipe(recipe))
    return {"campaign_id": campaign_id, "step": step, "status": "queued"}


@router.post("/campaigns/{campaign_id}/proposals", status_code=202)
def campaign_propose(campaign_id: str, body: Proposal, ctx: Ctx, who: Proposer) -> dict[str, Any]:
    """An agent's (or operator's) proposal; in `suggest` mode it waits for an operator."""
    recipe = checked_recipe(body.recipe)
    step, where = _campaign_call(ctx.campaigns.propose_external, campaign_id, recipe, body.reasoning, who.name)
    return {"campaign_id": campaign_id, "step": step, "status": where}


@router.get("/approvals")
def approvals_list(ctx: Ctx, who: Observer, status: str | None = "pending") -> dict[str, Any]:
    return {"approvals": ctx.campaigns.journal.approvals(status)}


@router.post("/approvals/{approval_id}/{decision}")
def approvals_decide(
    approval_id: str, decision: str, ctx: Ctx, who: Operator, body: Decision | None = None
) -> dict[str, Any]:
    if decision not in ("approve", "reject"):
        raise HTTPException(status_code=404, detail=f"no decision {decision!r}: approve or reject")
    body = body or Decision()
    edited = checked_recipe(body.recipe) if body.recipe is not None else None
    return _campaign_call(ctx.campaigns.decide, approval_id, decision, who.name, edited, body.note)


# last: its `{action}` segment would otherwise swallow /recipes and /proposals
@router.post("/campaigns/{campaign_id}/{action}")
def campaign_action(campaign_id: str, action: str, ctx: Ctx, who: Operator) -> dict[str, Any]:
    if action not in ("start", "pause", "resume", "stop"):
        raise HTTPException(status_code=404, detail=f"no campaign action {action!r}")
    status = _campaign_call(ctx.campaigns.set_state, campaign_id, action)
    return {"campaign_id": campaign_id, "status": status}
