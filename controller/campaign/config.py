"""A campaign's configuration: which agent, what budget, which world; validated like every other input."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agents.space import RecipeSpace


class CampaignConfig(BaseModel):
    """Everything needed to run — and, after a crash, to resume — a closed-loop campaign."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    agent: Literal["bayes", "sobol", "random"] = "bayes"
    budget_experiments: int = Field(20, ge=1, le=10_000, description="experiments, failed ones included")
    budget_instrument_h: float | None = Field(None, gt=0, description="stop once the instruments ran this long")
    batch: int = Field(1, ge=1, le=16, description="recipes proposed at once (q)")
    seed: int = 0
    characterize: Literal["none", "image", "full"] = "none"
    fixed: dict[str, float | str] = Field(default_factory=dict, description="recipe fields held constant")
    min_tc_k: float | None = Field(30.0, description="outcome constraint: Tc at least this")
    target_trapped_field_t: float | None = Field(None, gt=0, description="stop once a sample traps this much")
    patience: int | None = Field(None, ge=1, description="stop after this many experiments without improvement")
    world: dict[str, Any] = Field(default_factory=dict, description="the simulated world (World.model_dump())")
    mode: Literal["direct", "suggest"] = Field(
        "direct", description="service campaigns: proposals go straight to the queue, or wait for an operator"
    )

    @model_validator(mode="after")
    def _fixed_fields_fit_the_space(self) -> CampaignConfig:
        RecipeSpace(fixed=self.fixed)  # one line of ValueError for an unknown field, route or bound
        return self
