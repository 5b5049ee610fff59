"""One Bluesky run per stage of a sample's way through the lab.

Each plan moves the sample where it must be, opens a run whose start document names the campaign,
sample, step, recipe and instrument, makes the instrument do its work, reads it, and leaves the
instrument safe whatever happens (`finalize_wrapper` → `stop`). A checkpoint starts each stage, so a
deferred pause lands between stages; another starts each run's body (monitors clear checkpoints), so
a suspension or an immediate pause resumes by re-doing the interrupted action inside the same run.
"""

from __future__ import annotations

from collections.abc import Callable, Generator
from typing import Any

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import Msg

from controller.lab import Lab
from controller.plans.context import SampleContext
from devices.furnace import FurnaceProgram
from devices.mill import MillProgram

Plan = Generator[Msg, Any, Any]


def _safely(plan: Plan, *devices: Any) -> Plan:
    """Run `plan`, then stop `devices` (their safe state) on the way out, success or not."""

    def _safe() -> Plan:
        for dev in devices:
            yield from bps.stop(dev)

    return (yield from bpp.finalize_wrapper(plan, _safe()))


def mill(lab: Lab, ctx: SampleContext) -> Plan:
    """Charge the jar and mill; yields a run with the mill's state before/after and a monitored vial temperature."""
    r = ctx.recipe
    yield from bps.checkpoint()
    yield from bps.mv(lab.store, (ctx.sample_id, "mill"))

    # monitors are inserted after the wrapped plan's open_run, so this decorator goes outside
    @bpp.monitor_during_decorator([lab.mill.speed_rpm, lab.mill.vial_temperature_c, lab.mill.elapsed_s])
    @bpp.run_decorator(md=ctx.md("mill", "mill"))
    def _run() -> Plan:
        yield from bps.checkpoint()  # monitors clear the checkpoint; a resume re-mills from here
        program = MillProgram(ctx.sample_id, r.mill_rpm, r.milling_time_h, r.ball_to_powder_ratio, r.k_excess)
        yield from bps.mv(lab.mill, program)
        yield from bps.trigger_and_read([lab.mill])

    return (yield from _safely(_run(), lab.mill))


def sinter(lab: Lab, ctx: SampleContext) -> Plan:
    """Run the furnace programme of the recipe; the control thermocouple and pressure are monitored."""
    r = ctx.recipe
    yield from bps.checkpoint()
    yield from bps.mv(lab.store, (ctx.sample_id, "furnace"))
    monitored = [lab.furnace.temperature_c, lab.furnace.setpoint_c, lab.furnace.pressure_mpa, lab.furnace.elapsed_s]

    @bpp.monitor_during_decorator(monitored)
    @bpp.run_decorator(md=ctx.md("furnace", "sinter", route=r.route))
    def _run() -> Plan:
        yield from bps.checkpoint()  # a resume re-runs the programme: the sample's thermal history grows
        program = FurnaceProgram(
            ctx.sample_id, r.route, r.dwell_temperature_c, r.dwell_time_h, r.ramp_rate_c_per_min, r.pressure_mpa
        )
        yield from bps.mv(lab.furnace, program)
        yield from bps.trigger_and_read([lab.furnace])

    return (yield from _safely(_run(), lab.furnace))


def _load_stem(lab: Lab, ctx: SampleContext) -> Plan:
    if lab.stem.loaded_sample.get() != ctx.sample_id:
        yield from bps.mv(lab.store, (ctx.sample_id, "stem"))
        yield from bps.mv(lab.stem, ctx.sample_id)


def _configure(settings: dict[Any, float | int | None]) -> Plan:
    """Set the detector settings that were given; the others keep the instrument's own."""
    args = [x for signal, value in settings.items() if value is not None for x in (signal, value)]
    if args:
        yield from bps.mv(*args)


def _stem_run(
    lab: Lab,
    ctx: SampleContext,
    detector: Any,
    stage: str,
    settings: dict[Any, float | int | None],
    body: Callable[[], Plan] | None = None,
) -> Plan:
    """Load, configure, then one run of `body` (default: one trigger and read of `detector`), the beam safe after."""
    yield from bps.checkpoint()
    yield from _load_stem(lab, ctx)
    yield from _configure(settings)

    @bpp.stage_decorator([detector])
    @bpp.run_decorator(md=ctx.md("stem", stage, detector=detector.name))
    def _run() -> Plan:
        if body is None:
            yield from bps.trigger_and_read([detector])
        else:
            yield from body()

    return (yield from _safely(_run(), lab.stem))


def survey_image(lab: Lab, ctx: SampleContext, *, pixel_nm: float | None = None, shape_px: int | None = None) -> Plan:
    """A HAADF + BF survey image of the sample (arrays in HDF5, referenced by resource/datum)."""
    survey = lab.stem.survey
    settings = {survey.pixel_nm: pixel_nm, survey.shape_px: shape_px}
    return (yield from _stem_run(lab, ctx, survey, "survey_image", settings))


def sped_scan(lab: Lab, ctx: SampleContext, *, step_nm: float | None = None, scan_px: int | None = None) -> Plan:
    """A SPED 4D scan of the sample: one event per scan row, yielded as each row is acquired.

    The rows go to one HDF5 file (one resource, one datum per row with `row=y`), so an agent indexes a
    row while the next is acquired. A checkpoint before each row makes a pause or a suspension re-take
    only the interrupted row.
    """
    sped = lab.stem.sped

    def _rows() -> Plan:
        for y in range(int(sped.scan_px.get())):
            yield from bps.checkpoint()
            yield from bps.mv(sped.row, y)
            yield from bps.trigger_and_read([sped])

    settings = {sped.step_nm: step_nm, sped.scan_px: scan_px}
    return (yield from _stem_run(lab, ctx, sped, "sped_scan", settings, _rows))


def measure_properties(lab: Lab, ctx: SampleContext) -> Plan:
    """Trapped field at 5 K, Jc, Tc, density and phase fractions: the observation of this step."""
    yield from bps.checkpoint()
    yield from bps.mv(lab.store, (ctx.sample_id, "property_station"))
    yield from bps.mv(lab.properties, ctx.sample_id)

    @bpp.run_decorator(md=ctx.md("property_station", "measure_properties"))
    def _run() -> Plan:
        yield from bps.trigger_and_read([lab.properties])

    return (yield from _safely(_run(), lab.properties))
