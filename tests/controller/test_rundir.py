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
