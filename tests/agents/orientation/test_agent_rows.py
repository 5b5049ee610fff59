"""The orientation agent on a real RunEngine whose SPED scan streams one event per row: the map is
published with the last row, before the scan's run ends, once per scan — also when a pause re-takes a row."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import Msg, RunEngineInterrupted

from agents.orientation.agent import OrientationAgent
from controller.lab import Lab, build_sim_lab
from controller.plans import SampleContext, make_sample
from controller.recipe import load_recipe
from simulators.world import World

ROOT = Path(__file__).resolve().parents[3]
RECIPE = load_recipe(ROOT / "examples" / "recipes" / "weiss-2015.toml")
SCAN_SHAPE = (6, 6)


@pytest.fixture(scope="module", autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    mp = pytest.MonkeyPatch()
    mp.setenv("GRAINLOOP_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    mp.undo()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    world = World(time_acceleration=1e5, sped={"scan_shape": SCAN_SHAPE}, stem={"shape_px": 128})
    lab = build_sim_lab(world, tmp_path / "data", truth_dir=tmp_path / "truth")
    yield lab
    lab.close()


class Timeline:
    """The RunEngine's documents and the agent's, in the order they happened."""

    def __init__(self) -> None:
        self.docs: list[tuple[str, str, dict[str, Any]]] = []

    def source(self, name: str, doc: dict[str, Any]) -> None:
        self.docs.append(("engine", name, doc))

    def agent(self, name: str, doc: dict[str, Any]) -> None:
        self.docs.append(("agent", name, doc))

    def of(self, who: str, name: str) -> list[dict[str, Any]]:
        return [d for w, n, d in self.docs if w == who and n == name]

    def index(self, who: str, name: str, uid: str) -> int:
        key = "run_start" if name == "stop" else "uid"
        return next(i for i, (w, n, d) in enumerate(self.docs) if w == who and n == name and d[key] == uid)


def engine_with_agent() -> tuple[RunEngine, OrientationAgent, Timeline]:
    timeline = Timeline()
    agent = OrientationAgent(resolution_deg=2.0, subscribers=[timeline.agent])
    engine = RunEngine({})
    engine.subscribe(timeline.source)  # before the agent: the source's documents are logged as it sees them
    engine.subscribe(agent)
    return engine, agent, timeline


def assert_one_map_per_scan(agent: OrientationAgent, timeline: Timeline) -> None:
    sped = next(s for s in timeline.of("engine", "start") if s.get("stage") == "sped_scan")
    starts, stops = timeline.of("agent", "start"), timeline.of("agent", "stop")
    assert [s["parent_uid"] for s in starts] == [sped["uid"]]
    assert [s["exit_status"] for s in stops] == ["success"], stops[0].get("reason")
    assert agent.reports[-1].scan_shape == SCAN_SHAPE
    # indexed as the rows came: the map is out with the last row, before the scan's run is closed
    assert timeline.index("agent", "start", starts[0]["uid"]) < timeline.index("engine", "stop", sped["uid"])


def test_a_row_streamed_sped_scan_gets_one_orientation_map_before_its_run_ends(lab: Lab) -> None:
    engine, agent, timeline = engine_with_agent()
    engine(make_sample(lab, SampleContext("C-r", "S-0", 0, RECIPE), characterize="full"))
    sped = next(s for s in timeline.of("engine", "start") if s.get("stage") == "sped_scan")
    descriptors = {d["uid"] for d in timeline.of("engine", "descriptor") if d["run_start"] == sped["uid"]}
    events = [e for e in timeline.of("engine", "event") if e["descriptor"] in descriptors]
    assert [e["data"]["stem_sped_row"] for e in events] == list(range(SCAN_SHAPE[0]))
    assert_one_map_per_scan(agent, timeline)


def pause_after_row(row: int) -> Callable[[Msg], tuple[Any, Any]]:
    """A plan mutator that pauses the RunEngine once, after SPED row `row` has been saved."""
    state = {"row": -1}

    def mutate(msg: Msg) -> tuple[Any, Any]:
        if msg.command == "set" and getattr(msg.obj, "name", "") == "stem_sped_row":
            state["row"] = msg.args[0]
        if msg.command == "save" and state["row"] == row:
            state["row"] = -1
            return None, bps.pause()
        return None, None

    return mutate


def test_a_row_re_taken_after_a_pause_still_gives_one_map(lab: Lab) -> None:
    engine, agent, timeline = engine_with_agent()
    pause_after_row_2 = pause_after_row(2)

    plan = make_sample(lab, SampleContext("C-r", "S-0", 0, RECIPE), characterize="full")
    with pytest.raises(RunEngineInterrupted):
        engine(bpp.plan_mutator(plan, pause_after_row_2))
    assert timeline.of("agent", "start") == []
    engine.resume()
    assert_one_map_per_scan(agent, timeline)
