"""Plans on a simulated lab with a real RunEngine: documents, metadata, safing, suspension, pause/resume."""

from __future__ import annotations

import threading
import time

import h5py
import pytest
from bluesky.utils import FailedStatus, RunEngineInterrupted

from controller.plans import SampleContext, make_sample
from tests.controller.conftest import WEISS

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
