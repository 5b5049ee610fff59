"""`make_batch(lab, ctxs)`: a batch of samples through the lab at once, one sample per instrument at a time.

Each sample goes the way `make_sample` takes it (mill → sinter → STEM → properties → archive, every stage
its own run with the same metadata), and each instrument takes the samples in batch order: while sample
n sinters, the mill mills sample n + 1; sample n is imaged and measured while n + 1 sinters. The STEM
keeps a sample for its survey and its SPED scan; the sample store (one robot) moves one sample at a time.
The samples' plans run interleaved through one RunEngine (`controller.plans.concurrent`), each with its
sample id as run key, so runs of different samples overlap.

A failed sample ends its own plan (its instrument made safe by its stage); the others go on. Suspenders
are installed and every instrument is stopped at the end, as in `make_sample`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import groupby

from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp

from controller.lab import Lab
from controller.plans.concurrent import concurrently, hold
from controller.plans.context import SampleContext
from controller.plans.make_sample import Characterize, lab_suspenders, safe_all, sample_stages
from controller.plans.stages import Plan


@dataclass
class SampleOutcome:
    """How one sample of a batch went; times on the clock given to `make_batch`."""

    ctx: SampleContext
    error: Exception | None = None
    start_s: float | None = None  # when the mill took it
    end_s: float | None = None  # when it was archived, or failed
    wall_s: float = 0.0

    @property
    def elapsed_s(self) -> float:
        return 0.0 if self.start_s is None or self.end_s is None else self.end_s - self.start_s


@dataclass
class BatchOutcome:
    samples: list[SampleOutcome]
    start_s: float
    end_s: float

    @property
    def makespan_s(self) -> float:
        """From the first transfer to the last sample archived."""
        return self.end_s - self.start_s


def _sample(lab: Lab, outcome: SampleOutcome, characterize: Characterize, clock: Callable[[], float]) -> Plan:
    """One sample's stages, each holding its instrument (consecutive stages on one instrument hold it once)."""
    ctx, wall_start = outcome.ctx, 0.0
    try:
        for instrument, stages in groupby(sample_stages(lab, ctx, characterize), key=lambda pair: pair[0]):
            plans = [plan for _, plan in stages]

            def _stages(plans: list[Plan] = plans) -> Plan:
                if outcome.start_s is None:
                    nonlocal wall_start
                    outcome.start_s, wall_start = clock(), time.monotonic()
                for plan in plans:
                    yield from plan

            yield from hold(instrument, _stages())
        yield from bps.mv(lab.store, (ctx.sample_id, "archive"))
    finally:
        outcome.end_s = clock()
        outcome.wall_s = time.monotonic() - wall_start if outcome.start_s is not None else 0.0


def make_batch(
    lab: Lab,
    ctxs: Sequence[SampleContext],
    characterize: Characterize = "full",
    clock: Callable[[], float] = time.monotonic,
) -> Plan:
    """Make and measure a batch of samples, pipelined across the instruments; returns a `BatchOutcome`.

    `clock` times the samples (the lab's simulated clock in a simulation). Yields one run per stage and
    sample, runs of different samples overlapping; every instrument ends safe.
    """
    sample_ids = [ctx.sample_id for ctx in ctxs]
    if len(set(sample_ids)) != len(sample_ids):
        raise ValueError(f"sample ids of a batch must differ: {sample_ids}")
    outcomes = [SampleOutcome(ctx) for ctx in ctxs]

    def _batch() -> Plan:
        start_s = clock()
        plans = {
            o.ctx.sample_id: bpp.set_run_key_wrapper(_sample(lab, o, characterize, clock), o.ctx.sample_id)
            for o in outcomes
        }
        errors = yield from concurrently(plans, exclusive=[lab.store])
        for outcome in outcomes:
            outcome.error = errors[outcome.ctx.sample_id]
        return BatchOutcome(outcomes, start_s, clock())

    plan = bpp.finalize_wrapper(_batch(), safe_all(lab))
    return (yield from bpp.suspend_wrapper(plan, lab_suspenders(lab)))
