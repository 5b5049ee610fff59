"""The run-directory writer: whole lines even when monitor events arrive from another thread."""

from __future__ import annotations

import json
import threading
from pathlib import Path

from controller.rundir import RunDirectoryWriter, replay


def test_documents_from_two_threads_are_written_as_whole_lines(tmp_path: Path) -> None:
    writer = RunDirectoryWriter(tmp_path)
    writer("start", {"uid": "u" * 36, "time": 0.0, "sample_id": "S", "stage": "sinter"})
    payload = {"data": {"x": "y" * 500}}

    def emit(tag: str) -> None:
        for i in range(2000):
            writer("event", {"uid": f"{tag}-{i}", **payload})

    threads = [threading.Thread(target=emit, args=(tag,)) for tag in ("device", "engine")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer("stop", {"uid": "s", "run_start": "u" * 36, "exit_status": "success"})
    lines = writer.files[0].read_text().splitlines()
    docs = [json.loads(line) for line in lines]
    assert len(docs) == 4002
    assert len({d[1]["uid"] for d in docs if d[0] == "event"}) == 4000
    seen: list[str] = []
    assert replay(writer.files[0], lambda name, doc: seen.append(name))
    assert seen[0] == "start" and seen[-1] == "stop"


def test_a_torn_or_unfinished_run_file_is_not_replayed(tmp_path: Path) -> None:
    path = tmp_path / "run.jsonl"
    path.write_text('["start", {"uid": "a"}]\n["event", {"uid"')
    assert not replay(path, lambda *_: None)
    path.write_text('["start", {"uid": "a"}]\n')
    assert not replay(path, lambda *_: None)


def test_overlapping_runs_each_get_their_own_file(tmp_path: Path) -> None:
    writer = RunDirectoryWriter(tmp_path)
    for run in ("a", "b"):
        writer("start", {"uid": run * 36, "time": 0.0, "sample_id": f"S-{run}", "stage": "sinter"})
    for run in ("a", "b", "a"):
        writer("descriptor", {"uid": f"d{run}", "run_start": run * 36})
        writer("resource", {"uid": f"r{run}", "run_start": run * 36})
    for run in ("b", "a", "b"):
        writer("event", {"uid": f"e{run}", "descriptor": f"d{run}"})
        writer("datum", {"datum_id": f"x{run}", "resource": f"r{run}"})
    writer("stop", {"uid": "sa", "run_start": "a" * 36, "exit_status": "success"})
    writer("event", {"uid": "late", "descriptor": "db"})  # the other run is still open
    writer("stop", {"uid": "sb", "run_start": "b" * 36, "exit_status": "success"})
    for path, run in zip(writer.files, ("a", "b"), strict=True):
        docs = [json.loads(line) for line in path.read_text().splitlines()]
        assert docs[0] == ["start", {"uid": run * 36, "time": 0.0, "sample_id": f"S-{run}", "stage": "sinter"}]
        assert docs[-1][0] == "stop" and docs[-1][1]["run_start"] == run * 36
        assert {d.get("descriptor") or d.get("resource") or d.get("run_start") for _, d in docs[1:]} <= {
            f"d{run}",
            f"r{run}",
            run * 36,
        }
    # b: start, descriptor, resource, 2 × (event, datum), the late event, stop
    assert len(writer.files[1].read_text().splitlines()) == 9
