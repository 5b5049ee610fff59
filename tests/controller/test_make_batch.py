"""Pipelined batches: the same observations as one by one, overlapping instruments, failures and interruptions."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky.utils import RunEngineInterrupted
from ophyd.status import DeviceStatus

from controller.lab import Lab, build_sim_lab
from controller.observations import ObservationCollector
from controller.plans import SampleContext, make_sample
from controller.plans.make_batch import BatchOutcome, make_batch
from controller.recipe import Recipe
from devices.envelope import LimitError
from devices.furnace import FurnaceProgram
from devices.mill import MillProgram
from simulators.world import World
from tests.controller.conftest import WEISS, DocumentLog

REQUIRED_MD = ("campaign_id", "sample_id", "step", "recipe", "instrument", "stage")


def ctxs(*recipes: Recipe) -> list[SampleContext]:
    return [SampleContext("C-batch", f"S-{i}", i, recipe) for i, recipe in enumerate(recipes)]


def short(milling_time_h: float, dwell_time_h: float) -> Recipe:
    return WEISS.model_copy(update={"milling_time_h": milling_time_h, "dwell_time_h": dwell_time_h})


THREE = (short(1.0, 1.0), short(2.0, 0.5), short(0.5, 1.5))


def runs(log: DocumentLog) -> dict[str, dict[str, Any]]:
    """Start uid -> {sample, stage, instrument, start, stop, exit} from the documents."""
    out = {s["uid"]: {"sample": s["sample_id"], "stage": s["stage"], "start": s["time"]} for s in log.of("start")}
    for s in log.of("start"):
        out[s["uid"]]["instrument"] = s["instrument"]
    for stop in log.of("stop"):
        out[stop["run_start"]].update(stop=stop["time"], exit=stop["exit_status"])
    return out


def run_of(log: DocumentLog, sample: str, stage: str) -> dict[str, Any]:
    (found,) = [r for r in runs(log).values() if r["sample"] == sample and r["stage"] == stage]
    return found


def assert_safe(lab: Lab) -> None:
    assert lab.furnace.heater_power_pct.get() == 0.0 and lab.mill.speed_rpm.get() == 0.0
    assert lab.stem.beam_blanked.get() is True and lab.properties.magnet_field_t.get() == 0.0


def measured(observations: ObservationCollector) -> dict[int, dict[str, float]]:
    return {step: obs.properties for (_, step), obs in observations.observations.items()}


@pytest.fixture
def small_stem_labs(tmp_path: Path) -> Iterator[list[Lab]]:
    """Two labs on one world whose STEM frames and SPED scans are small (fast to simulate)."""
    world = World(stem={"shape_px": 128}, sped={"scan_shape": (8, 8)})
    labs = [build_sim_lab(world, tmp_path / f"data-{i}") for i in range(2)]
    yield labs
    for lab in labs:
        lab.close()


def test_a_batch_measures_what_one_by_one_measures_with_the_same_metadata(small_stem_labs, engine_log) -> None:
    engine, log, observations = engine_log
    lab, alone = small_stem_labs
    batch: BatchOutcome = engine(make_batch(lab, ctxs(*THREE), "full", clock=lab.sim.clock.now_s)).plan_result
    assert [s.error for s in batch.samples] == [None, None, None]

    alone_log, alone_obs = DocumentLog(), ObservationCollector()
    engine_alone = RunEngine({})
    engine_alone.subscribe(alone_log)
    engine_alone.subscribe(alone_obs)
    for ctx in ctxs(*THREE):
        engine_alone(make_sample(alone, ctx, "full"))

    assert measured(observations) == measured(alone_obs)  # the simulator is seeded per sample, not per order
    assert all(obs.readings == 1 for obs in observations.observations.values())
    key = [*REQUIRED_MD, "route", "detector"]
    assert sorted(tuple(str(s.get(k)) for k in key) for s in log.of("start")) == sorted(
        tuple(str(s.get(k)) for k in key) for s in alone_log.of("start")
    )
    assert all(stop["exit_status"] == "success" for stop in log.of("stop"))
    assert len(log.of("datum")) == len(alone_log.of("datum")) == 3 * (2 + 8)  # survey HAADF + BF, 8 SPED rows
    # the STEM keeps a sample for its survey and its scan
    stem_runs = sorted((r for r in runs(log).values() if r["instrument"] == "stem"), key=lambda r: r["start"])
    assert [r["sample"] for r in stem_runs] == ["S-0", "S-0", "S-1", "S-1", "S-2", "S-2"]
    assert all(lab.store.location_of(f"S-{i}") == "archive" for i in range(3))
    assert_safe(lab)


def test_the_mill_works_on_the_next_sample_while_the_furnace_sinters(make_lab, engine_log) -> None:
    engine, log, _ = engine_log
    lab = make_lab(time_acceleration=3.0e4)  # hours of margin stay a few tenths of a wall second
    recipes = (short(2.0, 4.0), short(3.0, 1.0), short(2.0, 1.0))
    batch: BatchOutcome = engine(make_batch(lab, ctxs(*recipes), "none", clock=lab.sim.clock.now_s)).plan_result
    for n in range(2):
        assert run_of(log, f"S-{n + 1}", "mill")["start"] < run_of(log, f"S-{n}", "sinter")["stop"]
    mill_1, sinter_0 = run_of(log, "S-1", "mill"), run_of(log, "S-0", "sinter")
    assert sinter_0["start"] < mill_1["start"] and mill_1["stop"] < sinter_0["stop"]
    measure_0, sinter_1 = run_of(log, "S-0", "measure_properties"), run_of(log, "S-1", "sinter")
    assert measure_0["start"] < sinter_1["stop"] and sinter_1["start"] < measure_0["stop"]
    # one sample at a time on each instrument, taken in batch order
    by_instrument: dict[str, list[dict[str, Any]]] = {}
    for run in sorted(runs(log).values(), key=lambda r: r["start"]):
        by_instrument.setdefault(run["instrument"], []).append(run)
    for instrument_runs in by_instrument.values():
        assert [r["sample"] for r in instrument_runs] == ["S-0", "S-1", "S-2"]
        assert all(a["stop"] <= b["start"] for a, b in pairwise(instrument_runs))
    # in simulated time: the batch took less than its runs one after another would
    one_after_another_s = sum(r["stop"] - r["start"] for r in runs(log).values()) * lab.sim.world.time_acceleration
    assert batch.makespan_s < 0.85 * one_after_another_s
    assert batch.samples[1].start_s < batch.samples[0].end_s


def trip_furnace_for(lab: Lab, sample_id: str) -> None:
    """The furnace's own interlock trips whenever it heats `sample_id`."""
    reason_of = lab.furnace.interlock_reason

    def _reason(*args: float) -> str | None:
        if lab.furnace.sample_id.get() == sample_id:
            return "over-temperature: drill"
        return reason_of(*args)

    lab.furnace.interlock_reason = _reason  # type: ignore[method-assign]


def test_one_failed_sample_fails_alone_and_every_instrument_ends_safe(make_lab, engine_log) -> None:
    engine, log, observations = engine_log
    lab = make_lab()
    trip_furnace_for(lab, "S-1")
    bad_mill = THREE[2].model_copy(update={"mill_rpm": 900.0})  # beyond the mill's envelope: refused by set()
    plan = make_batch(lab, ctxs(THREE[0], THREE[1], THREE[2], bad_mill, THREE[0]), "none", clock=lab.sim.clock.now_s)
    batch: BatchOutcome = engine(plan).plan_result
    errors = [s.error for s in batch.samples]
    assert errors[0] is None and errors[2] is None and errors[4] is None
    assert "over-temperature: drill" in str(errors[1].__cause__)
    assert "mill speed" in str(errors[3])
    assert sorted(measured(observations)) == [0, 2, 4]
    assert run_of(log, "S-1", "sinter")["exit"] == "fail"
    assert not [r for r in runs(log).values() if r["sample"] == "S-1" and r["stage"] == "measure_properties"]
    assert lab.furnace.state.get() == "done"  # S-2 and S-4 sintered after S-1 tripped it
    assert_safe(lab)


def test_a_sample_the_mill_refused_is_never_heated_even_if_the_furnace_trips_meanwhile(make_lab, engine_log) -> None:
    """Forces the interleaving: the furnace trips on S-0 just while the mill refuses S-1's programme.

    The RunEngine throws S-0's failure in place of the answer to S-1's `set`; S-1 must still fail at the mill.
    """
    engine, log, _ = engine_log
    lab = make_lab(time_acceleration=1.0e4)  # S-0 sinters for seconds of wall time: still heating when S-1 mills
    heated: list[tuple[str, Any]] = []
    furnace_set, mill_set = lab.furnace.set, lab.mill.set

    def _furnace_set(program: FurnaceProgram) -> DeviceStatus:
        if program.sample_id != "S-0":
            raise RuntimeError(f"{program.sample_id} reached the furnace")  # fail fast, before heating it
        status = furnace_set(program)
        heated.append((program.sample_id, status))
        return status

    furnace_was: list[str] = []

    def _mill_set(program: MillProgram) -> DeviceStatus:
        if program.sample_id == "S-1":
            furnace_was.append(f"{lab.furnace.sample_id.get()} {lab.furnace.state.get()}")
            (_, status), reported = heated[-1], threading.Event()
            status.add_callback(lambda _st: reported.set())  # runs after the RunEngine's own callback
            lab.furnace.trip("over-temperature: drill")
            assert reported.wait(10.0)
        return mill_set(program)

    lab.furnace.set, lab.mill.set = _furnace_set, _mill_set  # type: ignore[method-assign]
    bad_mill = short(0.5, 1.0).model_copy(update={"mill_rpm": 900.0})
    plan = make_batch(lab, ctxs(short(0.5, 4.0), bad_mill), "none", clock=lab.sim.clock.now_s)
    batch: BatchOutcome = engine(plan).plan_result
    assert furnace_was == ["S-0 heating"]  # the interleaving was forced
    errors = [s.error for s in batch.samples]
    assert "over-temperature: drill" in str(errors[0].__cause__)
    assert isinstance(errors[1], LimitError) and "mill speed" in str(errors[1])
    assert [sample for sample, _ in heated] == ["S-0"]
    assert run_of(log, "S-1", "mill")["exit"] == "fail"
    assert not [r for r in runs(log).values() if r["sample"] == "S-1" and r["stage"] != "mill"]
    assert_safe(lab)


def paused_and_resumed(lab: Lab, engine: RunEngine, interrupt: Any) -> BatchOutcome:
    """Run a two-sample batch; `interrupt` fires once S-0 heats while S-1 mills."""

    def _when_both_busy() -> None:
        while not (lab.furnace.state.get() == "heating" and lab.mill.state.get() == "running"):
            time.sleep(0.002)
        interrupt()

    threading.Thread(target=_when_both_busy, daemon=True).start()
    recipes = (short(0.5, 1.0), short(4.0, 0.5))
    try:
        return engine(make_batch(lab, ctxs(*recipes), "none", clock=lab.sim.clock.now_s)).plan_result
    except RunEngineInterrupted:
        assert engine.state == "paused"
        assert_safe(lab)  # a pause stops every instrument
        return engine.resume().plan_result


@pytest.mark.parametrize("how", ["pause", "site interlock"])
def test_an_interruption_mid_batch_re_does_what_each_sample_was_doing(make_lab, engine_log, how: str) -> None:
    engine, log, observations = engine_log
    engine.record_interruptions = True
    lab = make_lab(time_acceleration=2.0e4)

    def _interrupt() -> None:
        if how == "pause":
            engine.request_pause(defer=False)
        else:
            lab.interlock.put(1)
            time.sleep(0.2)
            lab.interlock.put(0)

    batch = paused_and_resumed(lab, engine, _interrupt)
    assert [s.error for s in batch.samples] == [None, None]
    assert sorted(measured(observations)) == [0, 1]
    assert all(obs.readings == 1 for obs in observations.observations.values())
    assert all(stop["exit_status"] == "success" for stop in log.of("stop"))
    assert len([r for r in runs(log).values() if r["stage"] == "sinter"]) == 2  # re-done inside the same runs
    # the interrupted programmes ran again: S-0's furnace history has two parts, S-1 was milled twice
    assert lab.sim is not None
    assert len(lab.sim._samples["S-0"].furnace_history) == 2
    assert lab.sim._samples["S-1"].uses["mill"] == 2
    interrupted = {d["run_start"] for d in log.of("descriptor") if d["name"] == "interruptions"}
    assert {run_of(log, "S-0", "sinter")["stop"], run_of(log, "S-1", "mill")["stop"]}  # both runs closed
    started = {s["uid"]: s["sample_id"] + "/" + s["stage"] for s in log.of("start")}
    assert {started[uid] for uid in interrupted} >= {"S-0/sinter", "S-1/mill"}
    assert_safe(lab)
