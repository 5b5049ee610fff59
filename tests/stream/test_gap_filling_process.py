"""The orientation agent as the service runs it (`python -m controller.service.analysis_process … --store`),
started in the middle of a SPED scan: it must still publish the scan's map, read from the run store, and
count the fill on its metrics endpoint. Real processes, sockets and Tiled on 127.0.0.1; every wait bounded."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
from bluesky import RunEngine
from bluesky import plan_stubs as bps
from bluesky import preprocessors as bpp
from bluesky.utils import Msg
from tiled.client import from_uri
from tiled.queries import Key

from controller.lab import build_sim_lab
from controller.plans import SampleContext, make_sample
from controller.recipe import load_recipe
from controller.store.embedded import EmbeddedTiled
from controller.store.writer import RunStoreWriter, tiled_connector
from controller.stream.publisher import make_publisher
from simulators.world import World
from tests.manager.test_worker_and_watchdog import free_port, wait_for
from tests.stream.test_stream import Receiver

ROOT = Path(__file__).resolve().parents[2]
RECIPE = load_recipe(ROOT / "examples" / "recipes" / "weiss-2015.toml")
SCAN_ROWS = 6


def held_after_row(row: int, reached: threading.Event, release: threading.Event) -> Any:
    """A plan mutator that holds the SPED scan after row `row` is saved until `release` is set."""
    state = {"row": -1}

    def hold() -> Any:
        reached.set()
        while not release.is_set():
            yield from bps.sleep(0.05)

    def mutate(msg: Msg) -> tuple[Any, Any]:
        if msg.command == "set" and getattr(msg.obj, "name", "") == "stem_sped_row":
            state["row"] = msg.args[0]
        if msg.command == "save" and state["row"] == row:
            state["row"] = -1
            return None, hold()
        return None, None

    return mutate


def test_an_agent_started_mid_scan_publishes_the_map_from_the_store(
    store: EmbeddedTiled, proxy: tuple[str, str], tmp_path: Path
) -> None:
    in_address, out_address = proxy
    lab = build_sim_lab(World(time_acceleration=1e5, sped={"scan_shape": (SCAN_ROWS, SCAN_ROWS)},
                              stem={"shape_px": 128}), tmp_path / "data")  # fmt: skip
    RE = RunEngine({}, context_managers=[])
    RE.subscribe(RunStoreWriter(tiled_connector(store.uri, store.api_key), tmp_path / "backup"))
    publisher = make_publisher(in_address)
    RE.subscribe(publisher)
    starts: dict[str, str] = {}
    RE.subscribe(lambda name, doc: starts.update({doc.get("stage", ""): doc["uid"]}) if name == "start" else None)
    reached, release = threading.Event(), threading.Event()
    plan = bpp.plan_mutator(
        make_sample(lab, SampleContext("C-p", "S-p", 0, RECIPE), characterize="full"),
        held_after_row(2, reached, release),
    )
    engine = threading.Thread(target=RE, args=(plan,), daemon=True)
    receiver = Receiver(out_address)
    metrics = f"127.0.0.1:{free_port()}"
    env = {
        **os.environ,
        "GRAINLOOP_TILED_API_KEY": store.api_key,
        "GRAINLOOP_CACHE_DIR": str(tmp_path / "cache"),
        "TILED_RETRY_ATTEMPTS": "2",
        "TILED_RETRY_TIMEOUT": "3",
        "OMP_WAIT_POLICY": "PASSIVE",
    }
    cmd = [sys.executable, "-m", "controller.service.analysis_process", "orientation"]
    cmd += ["--subscribe", out_address, "--publish", in_address, "--data-dir", str(tmp_path / "agent")]
    cmd += ["--store", store.uri, "--metrics", metrics]
    log_path = tmp_path / "orientation.log"
    agent: subprocess.Popen | None = None
    try:
        engine.start()
        wait_for(reached.is_set, 60, "the SPED scan's third row")
        with open(log_path, "wb") as log:
            agent = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
        wait_for(lambda: "listening" in log_path.read_text(), 60, "the agent process")
        threading.Event().wait(2.0)  # its SUB socket joins the proxy (PUB/SUB says nothing when it has)
        release.set()
        engine.join(60)
        assert not engine.is_alive()
        sped = starts["sped_scan"]

        def finished() -> list[tuple[dict[str, Any], dict[str, Any]]]:
            """(start, stop) of the analysis runs of the SPED scan received so far."""
            docs = list(receiver.docs)
            stops = {d["run_start"]: d for n, d in docs if n == "stop"}
            maps = [d for n, d in docs if n == "start" and d.get("parent_uid") == sped]
            return [(d, stops[d["uid"]]) for d in maps if d["uid"] in stops]

        wait_for(lambda: len(finished()) == 1, 60, "the map")
        [(start, stop)] = finished()
        event = next(d for n, d in receiver.docs if n == "event" and d["descriptor"] in _descriptors(receiver, start))
        assert start["agent"] == "orientation" and stop["exit_status"] == "success", stop.get("reason")
        assert event["data"]["scan_rows"] == SCAN_ROWS and event["data"]["indexed_fraction"] > 0.5
        assert start["stream_gap"]["outcome"] == "filled" and start["stream_gap"]["events_filled"] >= 3
        filled = 'grainloop_stream_gaps_filled_total{agent="orientation",outcome="filled"} 1.0'
        wait_for(lambda: filled in httpx.get(f"http://{metrics}/metrics", timeout=10).text, 10, "the fill counted")
        text = httpx.get(f"http://{metrics}/metrics", timeout=10).text
        assert 'grainloop_stream_gaps_filled_total{agent="orientation",outcome="failed"} 0.0' in text
        log_text = log_path.read_text()
        assert f"run {sped}: its start was dropped; handed over the store's" in log_text
        client = from_uri(store.uri, api_key=store.api_key)  # the map went to the store as well
        wait_for(lambda: len(client.search(Key("start.parent_uid") == sped)) == 1, 30, "the map in the store")
    finally:
        release.set()
        receiver.stop()
        if agent is not None:
            agent.terminate()
            try:
                assert agent.wait(20) == 0, log_path.read_text()[-3000:]
            finally:
                if agent.poll() is None:
                    agent.kill()
                    agent.wait(10)
        engine.join(30)
        publisher.close()
        lab.close()


def _descriptors(receiver: Receiver, start: dict[str, Any]) -> set[str]:
    return {d["uid"] for n, d in receiver.docs if n == "descriptor" and d["run_start"] == start["uid"]}
