"""Run one recipe on a simulated lab with a real RunEngine, writing a run directory."""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bluesky import RunEngine
from rich.console import Console

from controller.lab import build_sim_lab
from controller.observations import ObservationCollector
from controller.plans import SampleContext, make_sample
from controller.plans.make_sample import Characterize, failure_reason
from controller.progress import STAGES, StageProgress
from controller.recipe import Recipe
from controller.run_summary import plot_summary
from controller.rundir import RunDirectoryWriter
from simulators.world import World


@dataclass
class RecipeResult:
    campaign_id: str
    sample_id: str
    recipe: dict[str, Any]
    properties: dict[str, float]
    phase_fractions_wt_pct: dict[str, float]
    run_dir: str
    files: list[str]
    summary_png: str
    wall_s: float
    truth: dict[str, Any] | None = field(default=None)
    failure: str | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for optional in ("truth", "failure"):
            if out[optional] is None:
                out.pop(optional)
        return out


def sample_context(recipe: Recipe, world: World, step: int = 0, campaign_id: str | None = None) -> SampleContext:
    """Ids derived from the recipe and the seed, so the same command gives the same sample and results."""
    digest = hashlib.sha256(f"{world.seed}/{recipe.model_dump_json()}/{step}".encode()).hexdigest()[:10]
    return SampleContext(
        campaign_id=campaign_id or f"adhoc-{digest}", sample_id=f"S-{digest}", step=step, recipe=recipe
    )


def run_recipe(
    recipe: Recipe,
    world: World,
    out_dir: Path | str,
    *,
    characterize: Characterize = "full",
    reveal: bool = False,
    show_progress: bool = True,
    console: Console | None = None,
) -> RecipeResult:
    """Make and measure one sample; documents and data files go under `out_dir`."""
    out_dir = Path(out_dir)
    lab = build_sim_lab(world, out_dir / "data", truth_dir=out_dir / "truth" if reveal else None)
    ctx = sample_context(recipe, world)
    RE = RunEngine({}, call_returns_result=True)
    observations = ObservationCollector()
    writer = RunDirectoryWriter(out_dir)
    RE.subscribe(observations)
    RE.subscribe(writer)
    skipped = {"none": {"survey_image", "sped_scan"}, "image": {"sped_scan"}, "full": set()}[characterize]
    stages = tuple(s for s in STAGES if s not in skipped)
    t0 = time.monotonic()
    failure = None
    try:
        if show_progress:
            with StageProgress(stages, console=console) as progress:
                RE.subscribe(progress)
                RE(make_sample(lab, ctx, characterize))
        else:
            RE(make_sample(lab, ctx, characterize))
    except Exception as exc:  # the instruments are safe (finalize); report what failed, keep what was written
        failure = failure_reason(exc)
    finally:
        lab.close()
    wall = time.monotonic() - t0
    summary = plot_summary(writer.files, out_dir / ctx.sample_id / "summary.png")
    obs = observations.observations.get((ctx.campaign_id, ctx.step))
    truth = None
    if reveal and lab.sim is not None and failure is None:
        hidden = lab.sim.truth(ctx.sample_id)
        truth = {
            "properties": asdict(hidden.properties),
            "sintering": asdict(hidden.outcome),
            "powder": asdict(hidden.powder),
        }
    return RecipeResult(
        campaign_id=ctx.campaign_id,
        sample_id=ctx.sample_id,
        recipe=recipe.model_dump(),
        properties=obs.properties if obs else {},
        phase_fractions_wt_pct=obs.phase_fractions_wt_pct if obs else {},
        run_dir=str(out_dir),
        files=[str(p) for p in writer.files],
        summary_png=str(summary),
        wall_s=round(wall, 3),
        truth=truth,
        failure=failure,
    )
