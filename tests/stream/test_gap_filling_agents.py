"""GapFiller in front of the segmentation agent, fed by hand so that each gap is exactly the one meant:
a real embedded Tiled written by `RunStoreWriter`, real HDF5 frames; the store late, without the run,
or absent; the stream losing a datum, an event, the last event and the stop."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
from event_model import compose_run

from agents.segmentation.agent import SegmentationAgent
from agents.segmentation.classical import ClassicalSegmenter
from agents.segmentation.sim_data import HELD_OUT_SEED0, simulated_survey
from controller.store.embedded import EmbeddedTiled
from controller.store.writer import RunStoreWriter, tiled_connector
from controller.stream.gaps import GapFiller
from controller.stream.store_reader import TiledRunReader
from tests.agents.orientation.test_agent_rows import pause_after_row

Doc = tuple[str, dict[str, Any]]
TIMINGS = ("segmentation_s", "statistics_s")


@pytest.fixture(autouse=True)
def few_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the service sets for its agents: tiled's client gives up on a failing request in seconds."""
    import tiled.client.utils

    monkeypatch.setattr(tiled.client.utils, "TILED_RETRY_ATTEMPTS", 2)
    monkeypatch.setattr(tiled.client.utils, "TILED_RETRY_TIMEOUT", 3.0)


@pytest.fixture(scope="module")
def frames() -> list[np.ndarray]:
    image = simulated_survey(HELD_OUT_SEED0 + 7, shape=(128, 128)).image
    return [image, image[:, ::-1, :].copy()]  # two different frames of one specimen


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedTiled]:
    """One store for the module (every test writes runs of its own) that reads the tests' files."""
    server = EmbeddedTiled(tmp_path_factory.mktemp("tiled"), 0, [tmp_path_factory.getbasetemp()])
    server.start()
    try:
        yield server
    finally:
        server.close()


def survey_run(directory: Path, frames: list[np.ndarray]) -> list[Doc]:
    """A survey run as the STEM writes it: one HDF5 file per frame, a resource and a datum per channel."""
    directory.mkdir(parents=True, exist_ok=True)
    run = compose_run(metadata={"sample_id": "S-g", "campaign_id": "C-g", "step": 1, "stage": "survey_image"})
    keys = {
        f"stem_survey_{c}": {
            "source": "sim",
            "dtype": "array",
            "dtype_numpy": "<f4",
            "shape": [128, 128],
            "external": "FILESTORE:",
        }
        for c in ("haadf", "bf")
    }
    descriptor = run.compose_descriptor(name="primary", data_keys=keys)
    docs: list[Doc] = [("start", dict(run.start_doc)), ("descriptor", dict(descriptor.descriptor_doc))]
    for i, frame in enumerate(frames):
        path = directory / f"survey-{run.start_doc['uid'][:8]}-{i}.h5"
        with h5py.File(path, "w") as fh:
            fh["entry/haadf"], fh["entry/bf"] = frame[0], frame[1]
            fh["entry"].attrs["pixel_nm"] = 2.0
        data = {}
        for channel in ("haadf", "bf"):
            where = {"root": str(directory), "resource_path": path.name}
            bundle = run.compose_resource(spec="hdf5", resource_kwargs={"dataset": f"entry/{channel}"}, **where)
            datum = bundle.compose_datum(datum_kwargs={})
            docs += [("resource", dict(bundle.resource_doc)), ("datum", dict(datum))]
            data[f"stem_survey_{channel}"] = datum["datum_id"]
        event = descriptor.compose_event(data=data, timestamps=dict.fromkeys(data, time.time()), seq_num=i + 1)
        docs.append(("event", dict(event)))
    docs.append(("stop", dict(run.compose_stop())))
    return docs


def write(store: EmbeddedTiled, docs: list[Doc], backup: Path) -> None:
    writer = RunStoreWriter(tiled_connector(store.uri, store.api_key), backup)
    for name, doc in docs:
        writer(name, doc)
    assert writer.runs_stored == 1 and writer.failures == 0


class Analyses:
    """The analysis runs an agent published: (exit status, reason, data) per run, in order."""

    def __init__(self) -> None:
        self.docs: list[Doc] = []

    def __call__(self, name: str, doc: dict[str, Any]) -> None:
        self.docs.append((name, doc))

    def runs(self) -> list[tuple[str, str, dict[str, Any]]]:
        out, data = [], {}
        for name, doc in self.docs:
            if name == "event":
                data = {k: v for k, v in doc["data"].items() if k not in TIMINGS}
            elif name == "stop":
                out.append((doc["exit_status"], doc.get("reason", ""), data))
                data = {}
        return out


def agent_behind_filler(store: EmbeddedTiled | None, **kwargs: Any) -> tuple[GapFiller, Analyses, list[tuple]]:
    analyses, outcomes = Analyses(), []
    agent = SegmentationAgent(ClassicalSegmenter(), subscribers=[analyses])
    reader = TiledRunReader(tiled_connector(store.uri, store.api_key)) if store is not None else None
    filler = GapFiller(agent, reader, on_outcome=lambda *a: outcomes.append(a), **kwargs)
    return filler, analyses, outcomes


def expected(docs: list[Doc]) -> list[tuple[str, str, dict[str, Any]]]:
    """What the agent publishes when it gets every document."""
    analyses = Analyses()
    agent = SegmentationAgent(ClassicalSegmenter(), subscribers=[analyses])
    for name, doc in docs:
        agent(name, doc)
    return analyses.runs()


def test_a_lost_datum_and_a_lost_event_are_analysed_from_the_store(store, frames, tmp_path: Path) -> None:
    docs = survey_run(tmp_path / "data", frames)
    write(store, docs, tmp_path / "backup")
    first_haadf = docs[3][1]["datum_id"]
    lost = [(n, d) for n, d in docs if not (n == "datum" and d["datum_id"] == first_haadf)]
    lost = [(n, d) for n, d in lost if not (n == "event" and d["seq_num"] == 2)]
    filler, analyses, outcomes = agent_behind_filler(store)
    for name, doc in lost:
        filler(name, doc)
    want = expected(docs)
    assert [status for status, _, _ in want] == ["success", "success"]
    assert analyses.runs() == want  # both frames, once each, with the results of the lossless stream
    assert outcomes == [("filled", docs[0][1]["uid"], 2)] and filler.stats["events_filled"] == 2


def test_a_store_that_lags_behind_the_stream_is_waited_for(store, frames, tmp_path: Path) -> None:
    docs = survey_run(tmp_path / "data", frames)
    writer = threading.Timer(1.0, write, args=(store, docs, tmp_path / "backup"))
    writer.start()  # the store gets the run a second after the subscriber
    try:
        filler, analyses, outcomes = agent_behind_filler(store, timeout_s=20)
        t0 = time.monotonic()
        for name, doc in docs:
            if not (name == "event" and doc["seq_num"] == 1):
                filler(name, doc)
        waited_s = time.monotonic() - t0
    finally:
        writer.join(30)
    assert analyses.runs() == expected(docs)  # frame 1 from the store once it had it, then frame 2: in order
    assert outcomes[0][0] == "filled" and waited_s > 0.5


def test_a_gap_the_store_cannot_fill_fails_visibly_and_the_agent_goes_on(store, frames, tmp_path: Path) -> None:
    unstored = survey_run(tmp_path / "data", frames)  # never written to the store
    filler, analyses, outcomes = agent_behind_filler(store, timeout_s=0.5)
    for name, doc in unstored:
        if not (name == "event" and doc["seq_num"] == 2):
            filler(name, doc)
    [(first, _, _), (second, reason, data)] = analyses.runs()
    assert first == "success" and second == "fail" and data == {}
    assert "not in the run store" in reason and "event(s) 2 of 'primary'" in reason
    assert outcomes == [("failed", unstored[0][1]["uid"], 0)]
    stored = survey_run(tmp_path / "data", frames[:1])
    write(store, stored, tmp_path / "backup")
    for name, doc in stored:
        filler(name, doc)
    assert [r[0] for r in analyses.runs()] == ["success", "fail", "success"]


def test_without_a_store_a_gap_is_a_failed_analysis(frames, tmp_path: Path) -> None:
    docs = survey_run(tmp_path / "data", frames)
    filler, analyses, outcomes = agent_behind_filler(None)
    for name, doc in docs:
        if not (name == "event" and doc["seq_num"] == 1):
            filler(name, doc)
    assert [(r[0], "no run store" in r[1]) for r in analyses.runs()] == [("success", False), ("fail", True)]
    assert outcomes[0][0] == "failed"


def test_a_lost_last_event_and_stop_are_filled_once_the_stream_is_quiet(store, frames, tmp_path: Path) -> None:
    docs = survey_run(tmp_path / "data", frames)
    write(store, docs, tmp_path / "backup")
    filler, analyses, outcomes = agent_behind_filler(store, quiet_s=0.3)
    for name, doc in docs:
        if not (name == "stop" or (name == "event" and doc["seq_num"] == 2)):
            filler(name, doc)
    filler.poll()  # the stream has not been quiet long enough: nothing asked
    assert filler.store is not None and filler.store.reads == 0 and len(analyses.runs()) == 1
    time.sleep(0.4)
    filler.poll()
    assert analyses.runs() == expected(docs)
    assert outcomes == [("filled", docs[0][1]["uid"], 1)]
    filler("stop", docs[-1][1])  # the stream's stop, late after all: not handed over twice
    assert len(analyses.runs()) == 2


def test_a_point_re_taken_after_a_pause_passes_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """After a pause the RunEngine sends the SPED row again under the same seq_num: not a gap, not dropped."""
    from bluesky import RunEngine
    from bluesky import preprocessors as bpp
    from bluesky.utils import RunEngineInterrupted

    from agents.orientation.agent import OrientationAgent
    from controller.lab import build_sim_lab
    from controller.plans import SampleContext, make_sample
    from simulators.world import World
    from tests.stream.test_gap_filling import RECIPE

    monkeypatch.setenv("GRAINLOOP_CACHE_DIR", str(tmp_path / "cache"))
    analyses, rows = Analyses(), []
    agent = OrientationAgent(resolution_deg=2.0, subscribers=[analyses])
    handle_event = agent._event
    agent._event = lambda doc: (rows.append(doc["data"].get("stem_sped_row")), handle_event(doc))  # type: ignore[method-assign]
    filler = GapFiller(agent, None)
    engine = RunEngine({}, context_managers=[])
    engine.subscribe(filler)
    pause_after_row_2 = pause_after_row(2)

    world = World(time_acceleration=1e5, sped={"scan_shape": (6, 6)}, stem={"shape_px": 128})
    lab = build_sim_lab(world, tmp_path / "data")
    try:
        plan = make_sample(lab, SampleContext("C-r", "S-r", 0, RECIPE), characterize="full")
        with pytest.raises(RunEngineInterrupted):
            engine(bpp.plan_mutator(plan, pause_after_row_2))
        engine.resume()
    finally:
        lab.close()
    [(status, reason, data)] = analyses.runs()
    assert status == "success" and data["scan_rows"] == 6, reason
    assert [r for r in rows if r is not None] == [0, 1, 2, 2, 3, 4, 5]  # row 2 twice, as the RunEngine sent it
    assert filler.stats["retaken"] == 1 and filler.stats["failed"] == filler.stats["filled"] == 0
