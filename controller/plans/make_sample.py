"""`make_sample(recipe)`: mill → sinter → STEM survey + SPED → properties, as one plan of several runs."""

from __future__ import annotations

from typing import Any, Literal

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.suspenders import SuspendBoolHigh, SuspendCeil, SuspenderBase

from controller.lab import Lab
from controller.plans.context import SampleContext
from controller.plans.stages import Plan, measure_properties, mill, sinter, sped_scan, survey_image
from devices.envelope import FURNACE

Characterize = Literal["none", "image", "full"]


def lab_suspenders(lab: Lab) -> list[SuspenderBase]:
    """Suspend on a tripped site interlock and on a furnace reading above every route's absolute limit."""
    ceiling_c = max(route.max_temperature_c for route in FURNACE.routes.values())
    return [
        SuspendBoolHigh(lab.interlock, sleep=1.0, tripped_message="site interlock tripped"),
        SuspendCeil(
            lab.furnace.temperature_c,
            ceiling_c,
            resume_thresh=FURNACE.safe_temperature_c,
            sleep=1.0,
            tripped_message="furnace over its absolute temperature limit",
        ),
    ]


def sample_stages(lab: Lab, ctx: SampleContext, characterize: Characterize = "full") -> list[tuple[Any, Plan]]:
    """The stages of one sample in order, each with the instrument it occupies."""
    stages: list[tuple[Any, Plan]] = [(lab.mill, mill(lab, ctx)), (lab.furnace, sinter(lab, ctx))]
    if characterize in ("image", "full"):
        stages.append((lab.stem, survey_image(lab, ctx)))
    if characterize == "full":
        stages.append((lab.stem, sped_scan(lab, ctx)))
    stages.append((lab.properties, measure_properties(lab, ctx)))
    return stages


def safe_all(lab: Lab) -> Plan:
    """Stop every instrument: motor off, heater off and vented, beam blanked, magnet at zero."""
    for dev in (lab.mill, lab.furnace, lab.stem, lab.properties):
        yield from bps.stop(dev)


def make_sample(lab: Lab, ctx: SampleContext, characterize: Characterize = "full") -> Plan:
    """Make and measure one sample. Yields one run per stage; every instrument ends safe.

    `characterize`: "none" (properties only), "image" (+ survey image), "full" (+ SPED scan).
    Suspenders are installed for the duration of the plan.
    """

    def _stages() -> Plan:
        for _, stage in sample_stages(lab, ctx, characterize):
            yield from stage
        yield from bps.mv(lab.store, (ctx.sample_id, "archive"))

    plan = bpp.finalize_wrapper(_stages(), safe_all(lab))
    return (yield from bpp.suspend_wrapper(plan, lab_suspenders(lab)))


def failure_reason(exc: BaseException) -> str:
    """One line for a failed `make_sample`: the device's own error when bluesky wrapped it in FailedStatus."""
    cause = exc.__cause__ or exc
    return f"{type(cause).__name__}: {cause}".splitlines()[0]
