"""Plans on a simulated lab with a real RunEngine: documents, metadata, SPED rows, safing, suspension,
pause/resume."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import h5py
import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import FailedStatus, RunEngineInterrupted

from controller.lab import Lab, build_sim_lab
from controller.plans import SampleContext, make_sample
from controller.run_summary import external_array, load_runs, plot_summary
from controller.rundir import RunDirectoryWriter
from devices.assets import HDF5RowFile
from simulators.world import World
from tests.controller.conftest import WEISS, DocumentLog

REQUIRED_MD = ("campaign_id", "sample_id", "step", "recipe", "instrument")


SHORT = WEISS.model_copy(update={"dwell_time_h": 1.0})
"""A one-hour dwell: interruptions land in the furnace without waiting for ten simulated hours."""


def ctx(step: int = 0, recipe=WEISS) -> SampleContext:
    return SampleContext(campaign_id="C-test", sample_id=f"S-{step}", step=step, recipe=recipe)


def test_make_sample_emits_valid_documents_with_metadata_and_one_observation(make_lab, engine_log) -> None:
    engine, log, observations = engine_log
    lab = make_lab()
    engine(make_sample(lab, ctx(), characterize="image"))
    starts = log.of("start")
    assert [s["stage"] for s in starts] == ["mill", "sinter", "survey_image", "measure_properties"]
    for start in starts:
        for key in REQUIRED_MD:
            assert key in start, (start["stage"], key)
        assert start["recipe"] == WEISS.model_dump()
    assert all(stop["exit_status"] == "success" for stop in log.of("stop"))
    obs = observations.observations[("C-test", 0)]
    assert 0.7 < obs.properties["trapped_field_t"] < 1.5
    # instruments end safe
    assert lab.furnace.heater_power_pct.get() == 0.0 and lab.mill.speed_rpm.get() == 0.0
    assert lab.stem.beam_blanked.get() is True
    assert lab.store.location_of("S-0") == "archive"


def test_images_go_to_hdf5_files_referenced_by_resource_and_datum(make_lab, engine_log) -> None:
    engine, log, _ = engine_log
    lab = make_lab()
    engine(make_sample(lab, ctx(), characterize="image"))
    resources = {r["uid"]: r for r in log.of("resource")}
    datums = {d["datum_id"]: d for d in log.of("datum")}
    survey = next(s for s in log.of("start") if s["stage"] == "survey_image")
    descriptor = next(d for d in log.of("descriptor") if d["run_start"] == survey["uid"])
    assert descriptor["data_keys"]["stem_survey_haadf"]["external"] == "FILESTORE:"
    event = next(e for e in log.of("event") if e["descriptor"] == descriptor["uid"])
    datum = datums[event["data"]["stem_survey_haadf"]]
    resource = resources[datum["resource"]]
    assert resource["spec"] == "hdf5"
    with h5py.File(f"{resource['root']}/{resource['resource_path']}") as fh:
        image = fh[resource["resource_kwargs"]["dataset"]][()]
    assert image.shape == tuple(descriptor["data_keys"]["stem_survey_haadf"]["shape"])
    assert image.std() > 0
    # no array sits inline in any event
    assert all(not isinstance(v, list) for e in log.of("event") for v in e["data"].values())


def test_a_thermocouple_fault_aborts_the_plan_and_leaves_the_heater_off(make_lab, engine_log) -> None:
    engine, log, observations = engine_log
    lab = make_lab(forced=("thermocouple_open",))
    with pytest.raises(FailedStatus):
        engine(make_sample(lab, ctx(), characterize="none"))
    assert lab.furnace.state.get() == "tripped"
    assert lab.furnace.heater_power_pct.get() == 0.0
    sinter_stop = next(
        s for s in log.of("stop") if s["run_start"] == next(x["uid"] for x in log.of("start") if x["stage"] == "sinter")
    )
    assert sinter_stop["exit_status"] == "fail"
    assert not observations.observations  # no measurement from a failed sample


def test_the_site_interlock_suspends_the_plan_until_it_clears(make_lab, engine_log) -> None:
    engine, log, observations = engine_log
    lab = make_lab(time_acceleration=2.0e4)
    engine.record_interruptions = True
    states: list[str] = []

    def trip_then_clear() -> None:
        while lab.furnace.state.get() != "heating":
            time.sleep(0.005)
        lab.interlock.put(1)
        time.sleep(0.3)
        states.append(engine.state)
        lab.interlock.put(0)

    threading.Thread(target=trip_then_clear, daemon=True).start()
    engine(make_sample(lab, ctx(recipe=SHORT), characterize="none"))
    # RE.state still reads "running" while a suspender holds the plan: the interruption record says the truth
    assert states == ["running"]
    interruptions = [d for d in log.of("descriptor") if d["name"] == "interruptions"]
    assert interruptions, "the suspension was not recorded"
    # the suspension stopped the furnace; on resume the stage re-ran and the sample was still measured once
    sinter_runs = [s for s in log.of("start") if s["stage"] == "sinter"]
    assert len(sinter_runs) == 1
    assert len(observations.observations) == 1
    assert lab.furnace.heater_power_pct.get() == 0.0


def test_pause_and_resume_keep_one_observation_per_step(make_lab, engine_log) -> None:
    engine, log, observations = engine_log
    lab = make_lab(time_acceleration=2.0e4)

    def pause_during_sintering() -> None:
        while lab.furnace.state.get() != "heating":
            time.sleep(0.005)
        engine.request_pause(defer=False)

    threading.Thread(target=pause_during_sintering, daemon=True).start()
    with pytest.raises(RunEngineInterrupted):
        engine(make_sample(lab, ctx(step=3, recipe=SHORT), characterize="none"))
    assert engine.state == "paused"
    assert lab.furnace.heater_power_pct.get() == 0.0  # an immediate pause stops the instruments
    engine.resume()
    assert engine.state == "idle"
    assert list(observations.observations) == [("C-test", 3)]
    assert observations.observations[("C-test", 3)].readings == 1
    measured = [s for s in log.of("start") if s["stage"] == "measure_properties"]
    assert len(measured) == 1
    # the interrupted heating is part of the sample's thermal history, followed by the full re-run
    assert lab.sim is not None
    assert len(lab.sim._samples["S-3"].furnace_history) == 2


@pytest.fixture
def small_sped_lab(tmp_path: Path) -> Iterator[Lab]:
    """A lab whose SPED scans are 6 × 6 and survey frames 128² (fast to simulate)."""
    world = World(time_acceleration=1.0e5, sped={"scan_shape": (6, 6)}, stem={"shape_px": 128})
    lab = build_sim_lab(world, tmp_path / "data", truth_dir=tmp_path / "truth")
    yield lab
    lab.close()


def sped_run(log) -> tuple[dict, list[dict], dict[str, dict], dict[str, dict]]:
    """The SPED run's start, its primary events, and the datums and resources of the log."""
    start = next(s for s in log.of("start") if s["stage"] == "sped_scan")
    descriptors = {d["uid"] for d in log.of("descriptor") if d["run_start"] == start["uid"] and d["name"] == "primary"}
    events = [e for e in log.of("event") if e["descriptor"] in descriptors]
    return start, events, {d["datum_id"]: d for d in log.of("datum")}, {r["uid"]: r for r in log.of("resource")}


def test_a_sped_scan_streams_one_event_per_row_into_one_file(small_sped_lab, engine_log, tmp_path: Path) -> None:
    engine, log, observations = engine_log
    lab = small_sped_lab
    run_files = RunDirectoryWriter(tmp_path / "runs")
    engine.subscribe(run_files)
    engine(make_sample(lab, ctx(), characterize="full"))
    start, events, datums, resources = sped_run(log)
    descriptor = next(d for d in log.of("descriptor") if d["run_start"] == start["uid"] and d["name"] == "primary")
    config = descriptor["configuration"]["stem_sped"]["data"]
    assert config["stem_sped_scan_px"] == 6 and config["stem_sped_step_nm"] == lab.stem.sped.step_nm.get()
    assert descriptor["data_keys"]["stem_sped_patterns"]["shape"] == [6, 128, 128]

    rows = [datums[e["data"]["stem_sped_patterns"]]["datum_kwargs"]["row"] for e in events]
    assert rows == list(range(6)) and [e["data"]["stem_sped_row"] for e in events] == rows
    assert all(e["data"]["stem_sped_calibration_a_inv_per_px"] > 0 for e in events)
    (resource_uid,) = {datums[e["data"]["stem_sped_patterns"]]["resource"] for e in events}
    resource = resources[resource_uid]
    (truth_file,) = (lab.stem.truth_dir / "").glob("sped-*.h5")
    with h5py.File(truth_file) as fh:
        truth_shape = fh["phase"].shape
    with h5py.File(Path(resource["root"]) / resource["resource_path"]) as fh:
        patterns = fh[resource["resource_kwargs"]["dataset"]]
        assert patterns.shape == (*truth_shape, 128, 128) and patterns[-1].any()
    assert lab.stem.beam_blanked.get() is True and list(observations.observations) == [("C-test", 0)]
    # the run summary still reads the whole scan through any row's datum
    sped_docs = load_runs(run_files.files)["sped_scan"]
    assert external_array(sped_docs, "stem_sped_patterns").shape == (*truth_shape, 128, 128)
    assert plot_summary(run_files.files, tmp_path / "summary.png").stat().st_size > 20_000


def pause_after_row(plan, row: int):
    """`plan` with an immediate pause right after the SPED event of `row` is saved."""
    seen = {"row": -1}

    def mutate(msg):
        if msg.command == "set" and getattr(msg.obj, "name", "") == "stem_sped_row":
            seen["row"] = msg.args[0]
        if msg.command == "save" and seen["row"] == row:
            seen["row"] = -1
            return None, bps.pause()
        return None, None

    return bpp.plan_mutator(plan, mutate)


def test_a_paused_sped_scan_resumes_by_re_taking_one_row(small_sped_lab, engine_log) -> None:
    engine, log, observations = engine_log
    lab = small_sped_lab
    with pytest.raises(RunEngineInterrupted):
        engine(pause_after_row(make_sample(lab, ctx(), characterize="full"), 2))
    assert lab.stem.beam_blanked.get() is True
    engine.resume()
    start, events, datums, _ = sped_run(log)
    rows = [datums[e["data"]["stem_sped_patterns"]]["datum_kwargs"]["row"] for e in events]
    assert rows == [0, 1, 2, 2, 3, 4, 5], "the resume re-takes the row since the last checkpoint, then goes on"
    assert [e["seq_num"] for e in events] == [1, 2, 3, 3, 4, 5, 6], "bluesky's rewind numbers the re-take again"
    stop = next(s for s in log.of("stop") if s["run_start"] == start["uid"])
    assert stop["exit_status"] == "success" and list(observations.observations) == [("C-test", 0)]


def test_a_sped_scan_interrupted_mid_way_leaves_the_beam_blanked(small_sped_lab, engine_log, monkeypatch) -> None:
    engine, log, observations = engine_log
    lab = small_sped_lab
    with pytest.raises(RunEngineInterrupted):
        engine(pause_after_row(make_sample(lab, ctx(), characterize="full"), 2))
    engine.abort("operator")
    start, events, _, _ = sped_run(log)
    assert len(events) == 3
    assert next(s for s in log.of("stop") if s["run_start"] == start["uid"])["exit_status"] == "abort"
    assert lab.stem.beam_blanked.get() is True and lab.stem.state.get() != "acquiring"
    assert not observations.observations

    # a detector failure in the middle of a row (beam on): the row's status fails, the plan makes it safe
    engine2 = RunEngine({})
    log2 = DocumentLog()
    engine2.subscribe(log2)
    write_row = HDF5RowFile.write_row

    def failing(self: HDF5RowFile, row: int, frames) -> str:
        assert lab.stem.beam_blanked.get() is False
        if row == 3:
            raise OSError("detector link lost")
        return write_row(self, row, frames)

    monkeypatch.setattr(HDF5RowFile, "write_row", failing)
    with pytest.raises(FailedStatus):
        engine2(make_sample(lab, ctx(step=1), characterize="full"))
    start, events, _, _ = sped_run(log2)
    assert len(events) == 3
    stop = next(s for s in log2.of("stop") if s["run_start"] == start["uid"])
    assert stop["exit_status"] == "fail"
    assert lab.stem.beam_blanked.get() is True and lab.stem.state.get() != "acquiring"
