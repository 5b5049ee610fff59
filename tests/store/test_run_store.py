"""The run store: a real embedded Tiled server, a real RunEngine, and what happens when the store fails."""

from __future__ import annotations

import json
import stat
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from bluesky import RunEngine
from bluesky.plans import count
from event_model import compose_run
from ophyd.sim import det, direct_img
from tiled.client import from_uri

from controller.store.embedded import EmbeddedTiled
from controller.store.writer import RunStoreWriter, tiled_connector


@pytest.fixture(autouse=True)
def few_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the worker sets through the environment: tiled's client gives up on a dead server in seconds."""
    import tiled.client.utils

    monkeypatch.setattr(tiled.client.utils, "TILED_RETRY_ATTEMPTS", 2)
    monkeypatch.setattr(tiled.client.utils, "TILED_RETRY_TIMEOUT", 3.0)


def engine_with(writer: RunStoreWriter) -> tuple[RunEngine, list[str]]:
    RE = RunEngine({}, context_managers=[])
    starts: list[str] = []
    RE.subscribe(writer)
    RE.subscribe(lambda name, doc: starts.append(doc["uid"]) if name == "start" else None)
    return RE, starts


def backed_up(path: Path) -> list[str]:
    return [json.loads(line)["name"] for line in path.read_text().splitlines()]


def test_runs_are_written_and_read_back(store: EmbeddedTiled, tmp_path: Path) -> None:
    writer = RunStoreWriter(tiled_connector(store.uri, store.api_key), tmp_path / "backup")
    RE, starts = engine_with(writer)
    RE(count([det], num=3), sample_id="S-1")
    # TiledWriter refuses 2-D arrays inside events (grainloop's detectors write them as HDF5 assets):
    # that run must go whole to the backup, and the store must take the next run again
    RE(count([direct_img], num=2))
    RE(count([det], num=1))
    assert writer.runs_stored == 2 and writer.runs_backed_up == 1 and writer.failures == 1
    client = from_uri(store.uri, api_key=store.api_key)
    first = client[starts[0]]
    assert first.metadata["start"]["sample_id"] == "S-1" and first.metadata["stop"]["num_events"]["primary"] == 3
    np.testing.assert_array_equal(first["primary"]["seq_num"].read(), [1, 2, 3])
    assert starts[2] in client
    assert backed_up(tmp_path / "backup" / f"{starts[1]}.jsonl") == ["start", "descriptor", "event", "event", "stop"]


def test_an_unreachable_store_loses_nothing_and_fails_no_plan(tmp_path: Path) -> None:
    writer = RunStoreWriter(tiled_connector("http://127.0.0.1:9/api/v1", "nokey"), tmp_path / "backup")
    RE, starts = engine_with(writer)
    RE(count([det], num=3))
    RE(count([det], num=1))  # within retry_after_s: straight to the backup, the store not asked again
    assert writer.runs_backed_up == 2 and writer.runs_stored == 0 and writer.failures == 1
    names = backed_up(tmp_path / "backup" / f"{starts[0]}.jsonl")
    assert names == ["start", "descriptor", "event", "event", "event", "stop"]
    assert backed_up(tmp_path / "backup" / f"{starts[1]}.jsonl") == ["start", "descriptor", "event", "stop"]


def test_a_store_that_dies_between_runs_sends_the_next_run_to_the_backup(tmp_path: Path) -> None:
    server = EmbeddedTiled(tmp_path / "tiled", 0, [])
    server.start()
    writer = RunStoreWriter(tiled_connector(server.uri, server.api_key), tmp_path / "backup")
    RE, starts = engine_with(writer)
    try:
        RE(count([det], num=1))
    finally:
        server.close()
    RE(count([det], num=2))  # the server is gone: this run must end up whole in the backup
    assert writer.runs_stored == 1 and writer.runs_backed_up == 1
    assert backed_up(tmp_path / "backup" / f"{starts[1]}.jsonl") == ["start", "descriptor", "event", "event", "stop"]


def test_the_embedded_store_keeps_its_key_private_and_across_restarts(tmp_path: Path) -> None:
    first = EmbeddedTiled(tmp_path / "tiled", 0, [])
    key_file = tmp_path / "tiled" / "api_key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(first.api_key) >= 32
    assert EmbeddedTiled(tmp_path / "tiled", 0, []).api_key == first.api_key
    assert EmbeddedTiled(tmp_path / "tiled", 0, [], api_key="given").api_key == "given"


def test_writers_in_parallel_lose_nothing(store: EmbeddedTiled, tmp_path: Path) -> None:
    """The worker and the analysis agents write at once (tiled's default DuckDB tables failed at this)."""
    writers = [RunStoreWriter(tiled_connector(store.uri, store.api_key), tmp_path / f"backup{i}") for i in range(3)]
    starts: list[str] = []

    def write(writer: RunStoreWriter) -> None:
        for _ in range(3):
            run = compose_run()
            starts.append(run.start_doc["uid"])
            writer("start", run.start_doc)
            keys = {"x": {"source": "test", "dtype": "number", "shape": []}}
            stream = run.compose_descriptor(name="primary", data_keys=keys)
            writer("descriptor", stream.descriptor_doc)
            for i in range(15):
                writer("event", stream.compose_event(data={"x": float(i)}, timestamps={"x": time.time()}))
            writer("stop", run.compose_stop())

    threads = [threading.Thread(target=write, args=(w,)) for w in writers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    assert [(w.runs_stored, w.failures) for w in writers] == [(3, 0)] * 3
    client = from_uri(store.uri, api_key=store.api_key)
    for uid in starts:
        np.testing.assert_array_equal(client[uid]["primary"]["x"].read(), np.arange(15.0))


def test_an_analysis_run_with_histograms_is_stored_with_them_as_json(store: EmbeddedTiled, tmp_path: Path) -> None:
    """Tiled's SQLite tables take no list columns: 1-D result arrays are stored as JSON text, and read back."""
    from agents.analysis_stream import publish_analysis_run

    writer = RunStoreWriter(tiled_connector(store.uri, store.api_key), tmp_path / "backup")
    parent = compose_run(metadata={"sample_id": "S-9"}).start_doc
    result = {"grain_count": 12, "diameter_histogram_edges_nm": [0.0, 50.0, 100.0], "diameter_histogram_counts": [7, 5]}
    stream: list[tuple[str, dict]] = []
    publish_analysis_run([writer, lambda n, d: stream.append((n, d))], parent, {"agent": "segmentation"}, result)
    assert writer.runs_stored == 1 and writer.failures == 0
    uid = stream[0][1]["uid"]
    run = from_uri(store.uri, api_key=store.api_key)[uid]
    assert run.metadata["start"]["parent_uid"] == parent["uid"]
    table = run["primary"].read()
    assert json.loads(table["diameter_histogram_counts"].values[0]) == [7, 5]
    assert json.loads(table["diameter_histogram_edges_nm"].values[0]) == [0.0, 50.0, 100.0]
    assert int(table["grain_count"].values[0]) == 12
    event = next(d for n, d in stream if n == "event")
    assert event["data"]["diameter_histogram_counts"] == [7, 5]  # the stream keeps the list
