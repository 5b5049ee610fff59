"""The segmentation agent: direct analysis, bad input that never raises out of the callback, and a real
RunEngine whose survey run the agent analyses and answers with a run of its own (`parent_uid`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from bluesky import RunEngine
from event_model import compose_run

from agents.segmentation.agent import SegmentationAgent
from agents.segmentation.classical import ClassicalSegmenter
from agents.segmentation.image_input import ImageError
from agents.segmentation.sim_data import HELD_OUT_SEED0, simulated_survey
from tests.controller.conftest import DocumentLog as Published


@pytest.fixture(scope="module")
def survey():
    return simulated_survey(HELD_OUT_SEED0 + 7, shape=(256, 256))


@pytest.fixture
def agent_and_log() -> tuple[SegmentationAgent, Published]:
    log = Published()
    return SegmentationAgent(ClassicalSegmenter(), subscribers=[log]), log


def write_survey(path: Path, haadf: np.ndarray, bf: np.ndarray, pixel_nm: float = 2.0) -> Path:
    with h5py.File(path, "w") as fh:
        fh.create_dataset("entry/haadf", data=haadf)
        fh.create_dataset("entry/bf", data=bf)
        fh["entry"].attrs["pixel_nm"] = pixel_nm
        fh["entry"].attrs["sample_id"] = "S-x"
    return path


def survey_run_docs(path: Path, *, sample_id: str = "S-1", data: dict[str, Any] | None = None) -> Iterator[tuple]:
    """A minimal survey run as the STEM device writes it: resource + datum per channel, one event."""
    run = compose_run(metadata={"sample_id": sample_id, "campaign_id": "C-1", "step": 3})
    yield "start", run.start_doc
    data_keys = {
        k: {"source": "sim", "dtype": "array", "shape": [64, 64], "external": "FILESTORE:"}
        for k in ("stem_survey_haadf", "stem_survey_bf")
    }
    descriptor = run.compose_descriptor(name="primary", data_keys=data_keys)
    yield "descriptor", descriptor.descriptor_doc
    ids = {}
    for key, dataset in (("stem_survey_haadf", "entry/haadf"), ("stem_survey_bf", "entry/bf")):
        bundle = run.compose_resource(
            spec="hdf5", root=str(path.parent), resource_path=path.name, resource_kwargs={"dataset": dataset}
        )
        datum = bundle.compose_datum(datum_kwargs={})
        yield "resource", bundle.resource_doc
        yield "datum", datum
        ids[key] = datum["datum_id"]
    data = data if data is not None else ids
    yield "event", descriptor.compose_event(data=data, timestamps={k: 0.0 for k in data}, seq_num=1)
    yield "stop", run.compose_stop()


def test_analyze_an_array_and_a_survey_file(agent_and_log, survey, tmp_path: Path) -> None:
    agent, _ = agent_and_log
    report = agent.analyze(survey.image, pixel_nm=survey.pixel_nm)
    assert report.model == "classical" and report.image_shape_px == (256, 256) and report.pixel_nm_source == "argument"
    path = write_survey(tmp_path / "s.h5", survey.image[0], survey.image[1], pixel_nm=1.5)
    from_file = agent.analyze(path)
    assert from_file.pixel_nm == 1.5 and from_file.pixel_nm_source == "file"
    assert from_file.porosity == pytest.approx(report.porosity)
    with pytest.raises(ImageError, match="needs 2 channels"):
        agent.analyze(survey.image[0])


def test_a_survey_run_is_answered_with_a_linked_analysis_run(agent_and_log, survey, tmp_path: Path) -> None:
    agent, log = agent_and_log
    path = write_survey(tmp_path / "s.h5", survey.image[0], survey.image[1])
    docs = list(survey_run_docs(path))
    for name, doc in docs:
        agent(name, doc)
    (start,) = log.of("start")
    assert start["parent_uid"] == docs[0][1]["uid"]
    assert (start["sample_id"], start["campaign_id"], start["step"]) == ("S-1", "C-1", 3)
    (event,) = log.of("event")
    assert 0.0 <= event["data"]["porosity"] <= 1.0 and event["data"]["grain_count"] > 0
    (descriptor,) = log.of("descriptor")
    assert descriptor["data_keys"]["diameter_histogram_counts"]["dtype"] == "array"
    assert log.of("stop")[0]["exit_status"] == "success"


@pytest.mark.parametrize(
    "case",
    ["missing file", "corrupt file", "wrong dtype", "empty", "wrong shape", "not a datum id", "blank"],
)
def test_bad_input_fails_its_run_and_the_agent_keeps_going(agent_and_log, survey, tmp_path: Path, case: str) -> None:
    agent, log = agent_and_log
    path = tmp_path / "s.h5"
    data = None
    if case == "corrupt file":
        path.write_bytes(b"\x89HDF\r\n\x1a\n" + b"garbage" * 50)
    elif case == "wrong dtype":
        with h5py.File(path, "w") as fh:
            fh.create_dataset("entry/haadf", data=np.array(["a", "b"] * 512, dtype="S1").reshape(32, 32))
            fh.create_dataset("entry/bf", data=np.array(["a", "b"] * 512, dtype="S1").reshape(32, 32))
    elif case == "empty":
        write_survey(path, np.zeros((0, 0)), np.zeros((0, 0)))
    elif case == "wrong shape":
        write_survey(path, np.zeros((4, 8, 8, 8)), np.zeros((4, 8, 8, 8)))
    elif case == "blank":
        write_survey(path, np.zeros((64, 64)), np.zeros((64, 64)))
    elif case == "not a datum id":
        data = {"stem_survey_haadf": 3.0, "stem_survey_bf": [1, 2]}
    for name, doc in survey_run_docs(path, data=data):
        agent(name, doc)
    (stop,) = log.of("stop")
    assert stop["exit_status"] == "fail" and stop["reason"]
    assert not log.of("event")
    # the next, good run is analysed as usual
    good = write_survey(tmp_path / "good.h5", survey.image[0], survey.image[1])
    for name, doc in survey_run_docs(good):
        agent(name, doc)
    assert [s["exit_status"] for s in log.of("stop")] == ["fail", "success"]


def test_documents_of_other_runs_and_a_failing_subscriber_are_harmless(survey, tmp_path: Path) -> None:
    log = Published()

    def broken(name: str, doc: dict[str, Any]) -> None:
        raise RuntimeError("subscriber down")

    agent = SegmentationAgent(ClassicalSegmenter(), subscribers=[broken, log])
    run = compose_run(metadata={})
    agent("start", run.start_doc)
    desc = run.compose_descriptor(name="primary", data_keys={"x": {"source": "s", "dtype": "number", "shape": []}})
    agent("descriptor", desc.descriptor_doc)
    agent("event", desc.compose_event(data={"x": 1.0}, timestamps={"x": 0.0}, seq_num=1))
    agent("event", {"descriptor": "unknown", "data": {}})  # malformed: logged, ignored
    agent("stop", run.compose_stop())
    assert not log.docs
    path = write_survey(tmp_path / "s.h5", survey.image[0], survey.image[1])
    for name, doc in survey_run_docs(path):
        agent(name, doc)
    assert [n for n, _ in log.docs] == ["start", "descriptor", "event", "stop"]


def test_a_real_run_engine_survey_is_analysed_in_process(tmp_path: Path) -> None:
    from controller.lab import build_sim_lab
    from controller.plans import SampleContext, mill, sinter, survey_image
    from simulators.world import World
    from tests.controller.conftest import WEISS

    lab = build_sim_lab(World(time_acceleration=1.0e5), tmp_path / "data")
    try:
        published = Published()
        agent = SegmentationAgent(ClassicalSegmenter(), subscribers=[published])
        engine = RunEngine({})
        engine.subscribe(agent)
        source: list[tuple[str, dict]] = []
        engine.subscribe(lambda name, doc: source.append((name, doc)))
        ctx = SampleContext(campaign_id="C-seg", sample_id="S-seg", step=0, recipe=WEISS)

        def plan():
            yield from mill(lab, ctx)
            yield from sinter(lab, ctx)
            yield from survey_image(lab, ctx, shape_px=256)

        engine(plan())
    finally:
        lab.close()
    survey_start = next(d for n, d in source if n == "start" and d["stage"] == "survey_image")
    (start,) = published.of("start")  # the mill and furnace runs hold no image: no analysis for them
    assert start["parent_uid"] == survey_start["uid"] and start["sample_id"] == "S-seg"
    assert published.of("stop")[0]["exit_status"] == "success"
    data = published.of("event")[0]["data"]
    assert data["pixel_nm"] == pytest.approx(lab.stem.survey.pixel_nm.get())
    assert 0.0 <= data["porosity"] < 0.5
    assert data["grain_count"] >= 1
    assert sum(v for k, v in data.items() if k.startswith("fraction_")) == pytest.approx(1.0)
