"""Subscribers fill what the stream dropped from the run store: real RunEngine and simulated lab, a real
embedded Tiled written by `RunStoreWriter`, a real 0MQ proxy process and `RemoteDispatcher`s on 127.0.0.1.

One sample is made while three subscribers listen, each with a segmentation and an orientation agent
behind a `GapFiller`: one gets every document; one loses some on purpose (a SPED row's event, another
row's datum, the survey frame's event and the survey run's stop); one joins in the middle of the SPED
scan. The agents of all three must publish the same analyses, each once, and only the lossy ones may
have read the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky.plans import count
from ophyd.sim import det

from agents.orientation.agent import OrientationAgent
from agents.segmentation.agent import SegmentationAgent
from agents.segmentation.classical import ClassicalSegmenter
from controller.lab import build_sim_lab
from controller.plans import SampleContext, make_sample
from controller.recipe import load_recipe
from controller.store.embedded import EmbeddedTiled
from controller.store.writer import RunStoreWriter, tiled_connector
from controller.stream.gaps import GapFiller
from controller.stream.proxy import start_proxy_process
from controller.stream.publisher import make_publisher
from controller.stream.store_reader import TiledRunReader
from controller.stream.subscriber import call_every, make_dispatcher, request_stop
from simulators.world import World
from tests.manager.test_worker_and_watchdog import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
RECIPE = load_recipe(ROOT / "examples" / "recipes" / "weiss-2015.toml")
SCAN_SHAPE = (6, 6)
TIMING_FIELDS = ("segmentation_s", "statistics_s", "indexing_s", "grains_s", "load_s", "total_s", "patterns_per_s")
Keep = Callable[[str, dict[str, Any]], bool]


class Runs:
    """What a drop policy needs to know: each run's stage, by start uid and by descriptor uid."""

    def __init__(self) -> None:
        self.stage: dict[str, str] = {}
        self.descriptor_stage: dict[str, str] = {}

    def see(self, name: str, doc: dict[str, Any]) -> None:
        if name == "start":
            self.stage[doc["uid"]] = str(doc.get("stage", ""))
        elif name == "descriptor":
            self.descriptor_stage[doc["uid"]] = self.stage.get(doc["run_start"], "")

    def of_event(self, doc: dict[str, Any]) -> str:
        return self.descriptor_stage.get(doc.get("descriptor", ""), "")


def keep_all() -> Keep:
    return lambda name, doc: True


def lossy() -> Keep:
    """Lose SPED row 3's event, row 5's datum, the survey frame's event and the survey run's stop."""
    runs = Runs()

    def keep(name: str, doc: dict[str, Any]) -> bool:
        runs.see(name, doc)
        if name == "event" and runs.of_event(doc) == "sped_scan":
            return doc["seq_num"] != 3
        if name == "datum":
            return doc.get("datum_kwargs", {}).get("row") != 4
        if name == "event" and runs.of_event(doc) == "survey_image":
            return False
        return not (name == "stop" and runs.stage.get(doc["run_start"]) == "survey_image")

    return keep


def joins_mid_scan() -> Keep:
    """Nothing until the SPED scan's second row has gone by, then everything: a subscriber that joined late."""
    runs = Runs()
    joined = threading.Event()

    def keep(name: str, doc: dict[str, Any]) -> bool:
        runs.see(name, doc)
        if joined.is_set():
            return True
        if name == "event" and runs.of_event(doc) == "sped_scan" and doc["seq_num"] == 2:
            joined.set()
        return False

    return keep


@dataclass
class Subscriber:
    """A RemoteDispatcher in a thread: documents → drop policy → one GapFiller per agent."""

    address: str
    keep: Keep
    store: EmbeddedTiled
    published: dict[str, list[tuple[str, dict[str, Any]]]] = field(default_factory=dict)
    warm_stops: set[str] = field(default_factory=set)
    armed: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.readers: dict[str, TiledRunReader] = {}
        self.fillers: dict[str, GapFiller] = {}
        agents = {
            "segmentation": SegmentationAgent(ClassicalSegmenter()),
            "orientation": OrientationAgent(resolution_deg=2.0),
        }
        for name, agent in agents.items():
            self.published[name] = []
            agent.subscribe(lambda n, d, out=self.published[name]: out.append((n, d)))
            self.readers[name] = TiledRunReader(tiled_connector(self.store.uri, self.store.api_key))
            self.fillers[name] = GapFiller(agent, self.readers[name], timeout_s=10)
        self.dispatcher = make_dispatcher(self.address)
        self.dispatcher.subscribe(self._receive)
        call_every(self.dispatcher, 0.25, self._poll)
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):
            self.dispatcher.start()

    def _receive(self, name: str, doc: dict[str, Any]) -> None:
        if not self.armed.is_set():  # the warm-up runs that prove the subscription is up
            if name == "stop":
                self.warm_stops.add(doc["run_start"])
            return
        if self.keep(name, doc):
            for filler in self.fillers.values():
                filler(name, doc)

    def _poll(self) -> None:
        if self.armed.is_set():
            for filler in self.fillers.values():
                filler.poll()

    def analyses(self, agent: str) -> list[dict[str, Any]]:
        """The agent's finished analysis runs (each published whole): parent, exit status, reason, data."""
        runs: dict[str, dict[str, Any]] = {}
        for name, doc in list(self.published[agent]):
            if name == "start":
                runs[doc["uid"]] = current = {"parent_uid": doc["parent_uid"], "data": {}}
            elif name == "event":
                current["data"].update(doc["data"])
            elif name == "stop":
                runs[doc["run_start"]].update(exit_status=doc["exit_status"], reason=doc.get("reason"))
        return [r for r in runs.values() if "exit_status" in r]

    def stop(self) -> None:
        request_stop(self.dispatcher)
        self.thread.join(10)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[dict[str, Subscriber], dict[str, str]]]:
    """One sample made and imaged while the three subscribers listen; (subscribers, stage → source run uid)."""
    tmp = tmp_path_factory.mktemp("gaps")
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAINLOOP_CACHE_DIR", str(tmp / "cache"))
    store = EmbeddedTiled(tmp / "tiled", 0, [tmp / "data"])
    store.start()
    addresses = (f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    proxy = start_proxy_process(*addresses)
    lab = build_sim_lab(World(time_acceleration=1e5, sped={"scan_shape": SCAN_SHAPE}, stem={"shape_px": 128}),
                        tmp / "data")  # fmt: skip
    publisher = make_publisher(addresses[0])
    subscribers = {
        name: Subscriber(addresses[1], keep, store)
        for name, keep in (("clean", keep_all()), ("lossy", lossy()), ("late", joins_mid_scan()))
    }
    try:
        RE = RunEngine({})
        RE.subscribe(RunStoreWriter(tiled_connector(store.uri, store.api_key), tmp / "backup"))
        RE.subscribe(publisher)
        sources: dict[str, str] = {}
        RE.subscribe(lambda name, doc: sources.update({doc.get("stage", ""): doc["uid"]}) if name == "start" else None)
        deadline = time.monotonic() + 20  # PUB/SUB: a subscriber hears nothing sent before it joined
        while not all(sources.get("") in s.warm_stops for s in subscribers.values()):
            assert time.monotonic() < deadline, "the subscribers never heard a whole run"
            RE(count([det]))
            time.sleep(0.2)
        for s in subscribers.values():
            s.armed.set()
        RE(make_sample(lab, SampleContext("C-gap", "S-gap", 0, RECIPE), characterize="full"))

        def analysed() -> bool:
            return all(len(s.analyses("orientation")) >= 1 for s in subscribers.values()) and all(
                len(subscribers[k].analyses("segmentation")) >= 1 for k in ("clean", "lossy")
            )

        wait_for(analysed, 60, "every agent's analyses")
        time.sleep(0.5)  # a duplicate, if there were one, would come now
        yield subscribers, sources
    finally:
        for s in subscribers.values():
            s.stop()
        publisher.close()
        lab.close()
        proxy.terminate()
        proxy.wait(10)
        store.close()
        mp.undo()


def comparable(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in TIMING_FIELDS}


def test_a_subscriber_that_lost_nothing_never_reads_the_store(sample) -> None:
    subscribers, sources = sample
    clean = subscribers["clean"]
    assert [r.reads for r in clean.readers.values()] == [0, 0]
    assert all(f.stats["filled"] == f.stats["failed"] == f.stats["events_filled"] == 0 for f in clean.fillers.values())
    [segmentation] = clean.analyses("segmentation")
    [orientation] = clean.analyses("orientation")
    assert segmentation["parent_uid"] == sources["survey_image"] and segmentation["exit_status"] == "success"
    assert orientation["parent_uid"] == sources["sped_scan"] and orientation["exit_status"] == "success"
    assert orientation["data"]["scan_rows"] == SCAN_SHAPE[0]


def test_dropped_events_datums_and_stops_are_filled_once_from_the_store(sample) -> None:
    subscribers, sources = sample
    clean, lossy = subscribers["clean"], subscribers["lossy"]
    for agent, stage in (("segmentation", "survey_image"), ("orientation", "sped_scan")):
        [expected] = clean.analyses(agent)
        [got] = lossy.analyses(agent)  # one analysis: nothing analysed twice
        assert got["parent_uid"] == sources[stage] and got["exit_status"] == "success", got.get("reason")
        assert comparable(got["data"]) == comparable(expected["data"])
    segmentation, orientation = lossy.fillers["segmentation"].stats, lossy.fillers["orientation"].stats
    assert segmentation["filled"] == 1 and segmentation["events_filled"] == 1  # the frame, found by its stop
    assert orientation["filled"] == 1 and orientation["events_filled"] == 2  # row 3 (its event), row 5 (its datum)
    assert segmentation["failed"] == orientation["failed"] == 0


def test_a_subscriber_that_joins_mid_run_gets_the_whole_run_from_the_store(sample) -> None:
    subscribers, sources = sample
    clean, late = subscribers["clean"], subscribers["late"]
    [expected] = clean.analyses("orientation")
    [got] = late.analyses("orientation")
    assert got["parent_uid"] == sources["sped_scan"] and got["exit_status"] == "success", got.get("reason")
    assert comparable(got["data"]) == comparable(expected["data"])
    stats = late.fillers["orientation"].stats
    assert stats["starts_read"] == 1 and stats["descriptors_read"] == 1
    assert stats["events_filled"] == SCAN_SHAPE[0] and stats["held_back"] >= 1 and stats["failed"] == 0
    # the survey went by before it joined: a subscriber cannot fill a run it never heard of
    assert late.analyses("segmentation") == []
