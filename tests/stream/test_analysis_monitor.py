"""AnalysisMonitor: analysis runs told from source runs, their latency, records numbered and bounded."""

from __future__ import annotations

from typing import Any

from event_model import compose_run

from agents.analysis_stream import publish_analysis_run
from controller.service.analysis_monitor import AnalysisMonitor


def source_run(t0: float, n_events: int) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    """A source run whose documents are stamped t0, t0 + 1, … (its events are what an agent analyses)."""
    bundle = compose_run(metadata={"sample_id": "S-1", "campaign_id": "C-1", "step": 3}, time=t0)
    desc = bundle.compose_descriptor(
        name="primary", data_keys={"x": {"source": "sim", "dtype": "number", "shape": []}}, time=t0
    )
    docs: list[tuple[str, dict[str, Any]]] = [
        ("start", dict(bundle.start_doc)),
        ("descriptor", dict(desc.descriptor_doc)),
    ]
    for i in range(n_events):
        docs.append(
            ("event", dict(desc.compose_event(data={"x": i}, timestamps={"x": t0}, seq_num=i + 1, time=t0 + 1 + i)))
        )
    return docs, dict(bundle.start_doc)


def test_analysis_runs_are_recorded_with_latency_from_the_newest_source_document() -> None:
    seen: list[dict[str, Any]] = []
    latencies: list[tuple[str, float]] = []
    monitor = AnalysisMonitor(on_latency=lambda a, s: latencies.append((a, s)), on_finished=seen.append)
    docs, start = source_run(t0=1000.0, n_events=3)  # newest source document at t = 1003
    for name, doc in docs:
        monitor(name, doc)
    out: list[tuple[str, dict[str, Any]]] = []
    publish_analysis_run(
        [lambda n, d: out.append((n, d))],
        start,
        {"agent": "segmentation", "analysis": "microstructure", "images": {"overlay": "analysis/x/overlay.png"}},
        {"porosity": 0.1, "grain_count": 12},
    )
    out[0][1]["time"] = 1004.5  # the analysis run started 1.5 s after the last frame
    for name, doc in out:
        monitor(name, doc)
    [record] = monitor.events()
    assert record["seq"] == 1 and record["parent_uid"] == start["uid"] and record["agent"] == "segmentation"
    assert record["sample_id"] == "S-1" and record["campaign_id"] == "C-1" and record["step"] == 3
    assert record["exit_status"] == "success" and record["data"] == {"porosity": 0.1, "grain_count": 12}
    assert record["images"] == {"overlay": "analysis/x/overlay.png"}
    assert abs(record["latency_s"] - 1.5) < 1e-9 and latencies == [("segmentation", record["latency_s"])]
    assert seen == [record]
    assert monitor.get(record["uid"]) == record and monitor.events(after_seq=1) == []


def test_failed_runs_unseen_sources_and_the_bound() -> None:
    monitor = AnalysisMonitor(max_kept=3)
    _, unseen = source_run(t0=0.0, n_events=0)  # the monitor never saw this source run
    for i in range(5):
        publish_analysis_run([monitor], unseen, {"agent": "orientation"}, None, f"bad {i}")
    records = monitor.events()
    assert [r["seq"] for r in records] == [3, 4, 5]  # the newest three
    assert all(r["exit_status"] == "fail" and r["latency_s"] is None for r in records)
    assert records[-1]["reason"] == "bad 4" and records[-1]["data"] == {}
    assert [r["seq"] for r in monitor.events(after_seq=4)] == [5]


def test_a_run_without_parent_is_a_source_not_an_analysis() -> None:
    monitor = AnalysisMonitor()
    docs, start = source_run(t0=10.0, n_events=1)
    bundle_stop = {"run_start": start["uid"], "time": 20.0, "exit_status": "success", "uid": "s", "num_events": {}}
    for name, doc in [*docs, ("stop", bundle_stop)]:
        monitor(name, doc)
    assert monitor.events() == []


def test_events_the_stream_dropped_are_counted_at_the_stop() -> None:
    missed: list[tuple[str, int]] = []
    monitor = AnalysisMonitor(on_missed=lambda run, n: missed.append((run, n)))
    for dropped in (False, True):
        docs, start = source_run(t0=0.0, n_events=3)
        stop = {
            "run_start": start["uid"],
            "time": 9.0,
            "exit_status": "success",
            "uid": "s",
            "num_events": {"primary": 3},
        }
        for i, (name, doc) in enumerate([*docs, ("stop", stop)]):
            if not (dropped and i == 3):  # the second event
                monitor(name, doc)
    assert missed == [(start["uid"], 1)]


def test_gap_fills_reported_by_analysis_runs_are_counted_once_per_source_run() -> None:
    from prometheus_client import generate_latest

    from controller.api.metrics import ServiceMetrics

    metrics = ServiceMetrics(lambda: {})
    monitor = AnalysisMonitor(on_finished=metrics.analysis_finished)
    _, start = source_run(t0=0.0, n_events=2)
    for analysis, gap in (("a", {"outcome": "filled", "events_filled": 2}), ("b", {"outcome": "filled"}), ("c", None)):
        metadata = {"agent": "orientation", "analysis": analysis, **({"stream_gap": gap} if gap else {})}
        publish_analysis_run([monitor], start, metadata, {"x": 1})
    _, other = source_run(t0=5.0, n_events=1)
    publish_analysis_run(
        [monitor],
        other,
        {"agent": "orientation", "stream_gap": {"outcome": "failed"}},
        None,
        "lost",
    )
    assert monitor.events()[0]["stream_gap"] == {"outcome": "filled", "events_filled": 2}
    text = generate_latest(metrics.registry).decode()
    assert 'grainloop_stream_gaps_filled_total{agent="orientation",outcome="filled"} 1.0' in text
    assert 'grainloop_stream_gaps_filled_total{agent="orientation",outcome="failed"} 1.0' in text
    assert 'grainloop_stream_gaps_filled_total{agent="segmentation",outcome="filled"} 0.0' in text
