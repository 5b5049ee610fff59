"""Prometheus metrics on `/metrics`: the catalogue of design.md, prefix `grainloop_`, base units in names.

State (manager, RunEngine, suspension, queue, worker, instruments) is read at scrape time by a collector,
so it cannot go stale; what happens between scrapes (plans finished, durations, restarts, decisions,
analyses, HTTP requests) is counted as it happens. Every label set is initialised at start-up, so a
series exists at zero before its first event.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from controller.stream.gaps import OUTCOMES

MANAGER_STATES = ("idle", "executing_queue", "paused", "creating_environment")
RE_STATES = ("idle", "running", "pausing", "paused", "halting", "stopping", "aborting", "suspending", "panicked")
EXIT_STATUSES = ("completed", "failed", "stopped", "aborted", "halted")
ANALYSES = ("segmentation", "orientation")
GAP_OUTCOMES = OUTCOMES
INSTRUMENT_READINGS = {
    # (device, reading key) → (metric, help, scale)
    ("furnace", "furnace_temperature_c"): ("grainloop_furnace_temperature_celsius", "furnace readback", 1.0),
    ("furnace", "furnace_setpoint_c"): ("grainloop_furnace_setpoint_celsius", "furnace setpoint", 1.0),
    ("furnace", "furnace_pressure_mpa"): ("grainloop_furnace_pressure_pascals", "furnace pressure", 1e6),
    ("mill", "mill_speed_rpm"): ("grainloop_mill_speed_hertz", "mill speed (revolutions per second)", 1 / 60),
    ("mill", "mill_vial_temperature_c"): ("grainloop_mill_vial_temperature_celsius", "vial temperature", 1.0),
}


class ServiceMetrics:
    """The registry and the event metrics; `collect_state` is read at every scrape."""

    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.plans = Counter("grainloop_plans", "queue items finished, by exit status", ["exit_status"], registry=r)
        self.plan_duration = Histogram(
            "grainloop_plan_duration_seconds",
            "wall time of finished queue items",
            buckets=(1, 5, 15, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
            registry=r,
        )
        self.worker_restarts = Counter(
            "grainloop_worker_restarts", "worker processes replaced by the watchdog", registry=r
        )
        self.decision = Histogram(
            "grainloop_agent_decision_seconds",
            "Bayesian agent suggest() wall time",
            registry=r,
            buckets=(0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64),
        )
        self.analysis = Histogram(
            "grainloop_analysis_seconds",
            "analysis agent latency: newest document of the source run to the analysis run's start",
            ["agent"],
            registry=r,
            buckets=(0.25, 0.5, 1, 2, 4, 8, 16, 32, 64, 128),
        )
        self.analysis_runs = Counter(
            "grainloop_analysis_runs",
            "analysis runs published, by agent and exit status",
            ["agent", "exit_status"],
            registry=r,
        )
        self.stream_missed = Counter(
            "grainloop_stream_events_missed",
            "events of source runs the API process's stream subscriber did not receive (PUB/SUB drops)",
            registry=r,
        )
        self.stream_gaps = Counter(
            "grainloop_stream_gaps_filled",
            "source runs whose dropped documents an analysis agent needed, by whether the run store filled them",
            ["agent", "outcome"],
            registry=r,
        )
        self._gap_runs: dict[tuple[str, str], None] = {}  # (agent, source run) counted, oldest first
        self.http = Histogram(
            "grainloop_http_request_duration_seconds",
            "API request latency",
            ["method", "route", "status"],
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        for status in EXIT_STATUSES:
            self.plans.labels(status)
        for agent in ANALYSES:
            self.analysis.labels(agent)
            for status in ("success", "fail"):
                self.analysis_runs.labels(agent, status)
            for outcome in GAP_OUTCOMES:
                self.stream_gaps.labels(agent, outcome)
        r.register(_StateCollector(state))

    def analysis_finished(self, record: dict[str, Any]) -> None:
        """Count an analysis run (`AnalysisMonitor` record) and observe its latency."""
        agent = str(record.get("agent"))
        self.analysis_runs.labels(agent, "success" if record.get("exit_status") == "success" else "fail").inc()
        if record.get("latency_s") is not None:
            self.analysis.labels(agent).observe(max(float(record["latency_s"]), 0.0))
        gap = record.get("stream_gap") or {}
        source = (agent, str(record.get("parent_uid")))
        if gap.get("outcome") in GAP_OUTCOMES and source not in self._gap_runs:  # once per source run and agent
            self._gap_runs[source] = None
            if len(self._gap_runs) > 1000:
                del self._gap_runs[next(iter(self._gap_runs))]
            self.stream_gaps.labels(agent, gap["outcome"]).inc()

    def item_finished(self, result: dict[str, Any]) -> None:
        status = result.get("exit_status", "failed")
        self.plans.labels(status if status in EXIT_STATUSES else "failed").inc()
        start, stop = result.get("time_start"), result.get("time_stop")
        if isinstance(start, int | float) and isinstance(stop, int | float) and stop >= start:
            self.plan_duration.observe(stop - start)


class _StateCollector(Collector):
    def __init__(self, state: Callable[[], dict[str, Any]]) -> None:
        self.state = state

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        s = self.state()
        yield _one_hot("grainloop_manager_state", "manager state (1 = current)", MANAGER_STATES, s.get("manager_state"))
        yield _one_hot("grainloop_re_state", "RunEngine state (1 = current)", RE_STATES, s.get("re_state"))
        yield GaugeMetricFamily(
            "grainloop_suspended",
            "1 while a suspender holds the plan (RE state still reads running)",
            value=float(bool(s.get("suspended"))),
        )
        yield GaugeMetricFamily(
            "grainloop_queue_items", "items waiting in the queue", value=float(s.get("items_in_queue", 0))
        )
        yield GaugeMetricFamily(
            "grainloop_worker_up", "1 while the worker answers", value=float(bool(s.get("worker_up")))
        )
        yield GaugeMetricFamily("grainloop_locked", "1 while the lab is locked", value=float(bool(s.get("locked"))))
        connected = GaugeMetricFamily("grainloop_device_connected", "1 if the device could be read", labels=["device"])
        for name, ok in sorted((s.get("devices_connected") or {}).items()):
            connected.add_metric([name], float(ok))
        yield connected
        readings = s.get("readings") or {}
        for (device, key), (metric, help_text, scale) in INSTRUMENT_READINGS.items():
            value = (readings.get(device) or {}).get(key, {}).get("value")
            family = GaugeMetricFamily(metric, help_text)
            if isinstance(value, int | float):
                family.add_metric([], float(value) * scale)
            yield family
        agents = s.get("analysis_agents") or {}
        up = GaugeMetricFamily("grainloop_analysis_agent_up", "1 while the agent's process runs", labels=["agent"])
        restarts = CounterMetricFamily(
            "grainloop_analysis_agent_restarts", "agent processes restarted after they exited", labels=["agent"]
        )
        for name, agent in sorted(agents.items()):
            up.add_metric([name], float(bool(agent.get("up"))))
            restarts.add_metric([name], float(agent.get("restarts", 0)))
        yield up
        yield restarts
        step = GaugeMetricFamily("grainloop_campaign_experiments", "experiments finished", labels=["campaign_id"])
        best = GaugeMetricFamily(
            "grainloop_campaign_best_trapped_field_tesla", "best trapped field so far", labels=["campaign_id"]
        )
        for c in s.get("campaigns") or []:
            step.add_metric([c["campaign_id"]], float(c.get("observations", 0)))
            if c.get("best_trapped_field_t") is not None:
                best.add_metric([c["campaign_id"]], float(c["best_trapped_field_t"]))
        yield step
        yield best


def _one_hot(name: str, help_text: str, states: tuple[str, ...], current: str | None) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, help_text, labels=["state"])
    for state in states:
        family.add_metric([state], 1.0 if state == current else 0.0)
    return family
