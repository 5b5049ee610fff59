"""Who a run is for: the metadata every start document of a sample carries."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from controller.recipe import Recipe


@dataclass(frozen=True)
class SampleContext:
    """A sample in a campaign. `step` orders the campaign's experiments; `(campaign_id, step)` is unique."""

    campaign_id: str
    sample_id: str
    step: int
    recipe: Recipe

    @classmethod
    def single(cls, recipe: Recipe) -> SampleContext:
        """A one-off sample outside any campaign."""
        tag = uuid.uuid4().hex[:8]
        return cls(campaign_id=f"adhoc-{tag}", sample_id=f"S-{tag}", step=0, recipe=recipe)

    def md(self, instrument: str, stage: str, **extra: Any) -> dict[str, Any]:
        """Start-document metadata: campaign_id, sample_id, step, recipe, instrument, stage."""
        return {
            "campaign_id": self.campaign_id,
            "sample_id": self.sample_id,
            "step": self.step,
            "recipe": self.recipe.model_dump(),
            "instrument": instrument,
            "stage": stage,
            "plan_name": stage,
            **extra,
        }
