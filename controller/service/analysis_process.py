"""An analysis agent as a service process: documents in from the 0MQ proxy, analysis runs out.

    python -m controller.service.analysis_process segmentation|orientation \
        --subscribe HOST:PORT --publish HOST:PORT --data-dir DIR [--store URI] \
        [--fill-timeout-s S] [--metrics HOST:PORT]

The agent (`SegmentationAgent` or `OrientationAgent`) hears every document the worker publishes through
the proxy's output. Each analysis run it makes goes back into the proxy's input (so the API process,
other agents and any `RemoteDispatcher` see it) and, with `--store`, to the Tiled run store with its
`parent_uid` (key in `GRAINLOOP_TILED_API_KEY`). Its figures are PNG files under
`DIR/analysis/<figure id>/`, named in the analysis run's start document (`images`: name → path
relative to `DIR`): the segmentation overlay with the grain-size histogram, the IPF map and the
misorientation histogram. A figure that cannot be drawn is logged and left out; it never fails the run.

Documents the stream dropped (a slow agent, or one that joined mid-run) are filled from the run store
(`controller.stream.gaps.GapFiller`, reads retried for at most `--fill-timeout-s`, default 10 s): the agent
analyses what it missed once, and a gap the store cannot fill becomes a failed analysis run naming it.
Without `--store` gaps are only reported that way. Runs are counted in
`grainloop_stream_gaps_filled_total{agent,outcome="filled"|"failed"}`, served on `--metrics HOST:PORT`
when given (`/metrics`), and every fill is logged.

The process runs torch on one thread so that it does not starve the RunEngine worker beside it, and
exits cleanly on SIGTERM.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("grainloop.analysis")
AGENTS = ("segmentation", "orientation")
IMAGE_ROOT = "analysis"
"""Figures live under `data_dir / IMAGE_ROOT`."""
POLL_INTERVAL_S = 5.0
"""How often the gap filler looks for runs whose stop the stream dropped."""


class FigureDir:
    """Where an agent process writes the figures of its analysis runs."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def write(self, writers: Mapping[str, Callable[[Path], Any]]) -> dict[str, str]:
        """Call each writer with `<fresh dir>/<name>.png`; name → path relative to `data_dir` of those that
        succeeded (a failure is logged and leaves that figure out)."""
        relative = f"{IMAGE_ROOT}/{uuid.uuid4().hex}"
        directory = self.data_dir / relative
        directory.mkdir(parents=True, exist_ok=True)
        images: dict[str, str] = {}
        for name, write in writers.items():
            try:
                write(directory / f"{name}.png")
                images[name] = f"{relative}/{name}.png"
            except Exception:
                log.exception("figure %s could not be written", name)
        return images


def segmentation_agent(figures: FigureDir) -> Any:
    """The segmentation agent with the default model, writing its overlay for every report."""
    from agents.segmentation.agent import Analysis, SegmentationAgent
    from agents.segmentation.models import load_segmenter
    from agents.segmentation.overlay import write_overlay

    class Agent(SegmentationAgent):
        _last: Analysis | None = None

        def analyze_full(self, *args: Any, **kwargs: Any) -> Analysis:
            self._last = super().analyze_full(*args, **kwargs)
            return self._last

        def _figures(self, report: Any | None) -> dict[str, str]:
            a, self._last = self._last, None
            if report is None or a is None or a.report is not report:
                return {}
            grains = a.grain_map.grains if a.grain_map is not None else None
            classes = tuple(self.segmenter.classes)
            return figures.write({"overlay": lambda p: write_overlay(p, a.image, a.class_map, classes, report, grains)})

    return Agent(load_segmenter())


def orientation_agent(figures: FigureDir) -> Any:
    """The orientation agent with its default phases, writing the IPF map and misorientation histogram."""
    from agents.orientation.agent import OrientationAgent, OrientationAnalysis
    from agents.orientation.plots import write_ipf_map, write_misorientation_histogram

    class Agent(OrientationAgent):
        _last: OrientationAnalysis | None = None

        def _finish(self, *args: Any, **kwargs: Any) -> OrientationAnalysis:
            self._last = super()._finish(*args, **kwargs)
            return self._last

        def _figures(self, report: Any | None) -> dict[str, str]:
            a, self._last = self._last, None
            if report is None or a is None or a.report is not report:
                return {}
            return figures.write(
                {
                    "ipf": lambda p: write_ipf_map(p, a.grains, self.critical_deg),
                    "misorientation": lambda p: write_misorientation_histogram(p, a.grains, self.critical_deg),
                }
            )

    return Agent()


def build_agent(kind: str, data_dir: Path) -> Any:
    if kind not in AGENTS:
        raise ValueError(f"unknown agent {kind!r}; known: {', '.join(AGENTS)}")
    figures = FigureDir(data_dir)
    return segmentation_agent(figures) if kind == "segmentation" else orientation_agent(figures)


def gap_metrics(agent: str) -> tuple[Any, Any]:
    """This process's metrics registry and its gap counter, both outcomes at zero from the start."""
    from prometheus_client import CollectorRegistry, Counter

    from controller.stream.gaps import OUTCOMES

    registry = CollectorRegistry()
    gaps = Counter(
        "grainloop_stream_gaps_filled",
        "runs whose dropped documents this agent needed, by whether the run store filled them all",
        ["agent", "outcome"],
        registry=registry,
    )
    for outcome in OUTCOMES:
        gaps.labels(agent, outcome)
    return registry, gaps


def _address(text: str) -> tuple[str, int]:
    host, port = text.rsplit(":", 1)
    return host, int(port)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent", choices=AGENTS)
    parser.add_argument("--subscribe", required=True, help="HOST:PORT of the 0MQ proxy's output")
    parser.add_argument("--publish", required=True, help="HOST:PORT of the 0MQ proxy's input")
    parser.add_argument("--data-dir", type=Path, required=True, help="figures go under DIR/analysis")
    parser.add_argument("--store", default=None, help="Tiled API root (key: GRAINLOOP_TILED_API_KEY)")
    parser.add_argument("--fill-timeout-s", type=float, default=10.0, help="how long a gap fill waits for the store")
    parser.add_argument("--metrics", default=None, help="HOST:PORT to serve this agent's Prometheus metrics on")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s {args.agent} %(levelname)s %(message)s")

    import torch

    torch.set_num_threads(1)
    from controller.store.writer import RunStoreWriter, tiled_connector
    from controller.stream.gaps import GapFiller
    from controller.stream.publisher import make_publisher
    from controller.stream.store_reader import TiledRunReader
    from controller.stream.subscriber import call_every, make_dispatcher, request_stop, run_until_stopped

    args.data_dir.mkdir(parents=True, exist_ok=True)
    agent = build_agent(args.agent, args.data_dir)
    publisher = make_publisher(_address(args.publish))
    agent.subscribe(publisher)
    reader = None
    if args.store:
        connect = tiled_connector(args.store, os.environ.get("GRAINLOOP_TILED_API_KEY"))
        agent.subscribe(RunStoreWriter(connect, args.data_dir / "store-backup"))
        reader = TiledRunReader(connect)
    else:
        log.warning("no run store (--store): documents the stream drops are reported, not filled")
    registry, gaps = gap_metrics(args.agent)
    if args.metrics:
        from prometheus_client import start_http_server

        host, port = _address(args.metrics)
        start_http_server(port, addr=host, registry=registry)
    filler = GapFiller(
        agent,
        reader,
        timeout_s=args.fill_timeout_s,
        on_outcome=lambda outcome, run_uid, n_events: gaps.labels(args.agent, outcome).inc(),
    )
    dispatcher = make_dispatcher(_address(args.subscribe))
    dispatcher.subscribe(filler)
    call_every(dispatcher, POLL_INTERVAL_S, filler.poll)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: request_stop(dispatcher))
    log.info("%s agent listening on %s, publishing to %s", args.agent, args.subscribe, args.publish)
    try:
        run_until_stopped(dispatcher)
    finally:
        publisher.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
