"""Does the dashboard's event stream slow the RunEngine? Step time with 0 vs 50 SSE clients, one service.

A real `grainloop serve` (embedded defaults, free loopback ports, the demo's start-up) runs the same
items alternately without and with 50 concurrent `/api/stream` clients (A B A B …, so drift in the
shared machine's load hits both alike); the clients read every byte, as browsers do. Two step times,
from the history's `time_start` / `time_stop` (the worker's own clock):

- **sample step**: one `make_sample` of a fixed recipe with `characterize="image"` — a campaign's step:
  mill, furnace, STEM survey image (CPU-heavy simulators), properties;
- **RE message loop**: a `hold` of `HOLD_TICKS` × (checkpoint + 10 ms sleep); its overhead per tick
  beyond the 10 ms asked for is the RunEngine's own per-message cost.

The ratio load / anchor of the medians is printed; the target is < 1.10 (less than 10 % slower).

    .venv/bin/python bench/sse_clients.py [--quick] [--json] [--clients N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from controller.service.demo import RunningService, start_service

RECIPE = {
    "mill_rpm": 500.0,
    "milling_time_h": 4.0,
    "ball_to_powder_ratio": 10.0,
    "k_excess": 0.03,
    "route": "hip",
    "dwell_temperature_c": 700.0,
    "dwell_time_h": 4.0,
    "pressure_mpa": 150.0,
    "ramp_rate_c_per_min": 5.0,
}
HOLD_TICKS = 200
HOLD_TICK_S = 0.01


class Clients:
    """N concurrent stream readers on their own event loop thread; counts the bytes they read."""

    def __init__(self, service: RunningService, n: int) -> None:
        self.service, self.n = service, n
        self.bytes_read = 0
        self.connections = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _one(self, client: httpx.AsyncClient) -> None:
        last_id: str | None = None
        while not self._stop.is_set():  # the server ends each stream after a while: reconnect like EventSource
            headers = {"Last-Event-ID": last_id} if last_id else {}
            async with client.stream("GET", "/api/stream", headers=headers) as r:
                self.connections += 1
                async for chunk in r.aiter_raw():
                    self.bytes_read += len(chunk)
                    for line in chunk.split(b"\n"):
                        if line.startswith(b"id: "):
                            last_id = line[4:].decode()
                    if self._stop.is_set():
                        return

    async def _run(self) -> None:
        headers = {"Authorization": f"ApiKey {self.service.key}"}
        limits = httpx.Limits(max_connections=self.n + 5)
        async with httpx.AsyncClient(base_url=self.service.url, headers=headers, timeout=60, limits=limits) as client:
            tasks = [asyncio.create_task(self._one(client)) for _ in range(self.n)]
            while not self._stop.is_set():
                await asyncio.sleep(0.1)
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def __enter__(self) -> Clients:
        self._thread.start()
        with self.service.client() as api:
            deadline = time.monotonic() + 60
            while api.get("/api/stream/stats").json()["clients"] < self.n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.n} stream clients did not connect within 60 s")
                time.sleep(0.2)
        return self

    def __exit__(self, *_: Any) -> None:
        self._stop.set()
        self._thread.join(30)


def run_item(api: httpx.Client, item: dict[str, Any], timeout_s: float = 300) -> float:
    """Queue one item, run it, return its wall seconds as the worker recorded them."""
    before = len(api.get("/api/history/get").json()["items"])
    api.post("/api/queue/item/add", json={"item": item}).raise_for_status()
    api.post("/api/queue/start").raise_for_status()
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        items = api.get("/api/history/get").json()["items"]
        if len(items) > before and api.get("/api/status").json()["manager_state"] == "idle":
            result = items[-1]["result"]
            if result["exit_status"] != "completed":
                raise RuntimeError(f"{item['name']} ended {result['exit_status']}: {result['msg']}")
            return result["time_stop"] - result["time_start"]
        time.sleep(0.05)
    raise RuntimeError(f"{item['name']} did not finish within {timeout_s} s")


def measure(api: httpx.Client, sample: int) -> dict[str, float]:
    kwargs = {"recipe": RECIPE, "campaign_id": "bench-sse", "sample_id": f"B-{sample}", "step": sample}
    sample_s = run_item(api, {"name": "make_sample", "kwargs": {**kwargs, "characterize": "image"}})
    hold = {"name": "hold", "kwargs": {"duration_s": HOLD_TICKS * HOLD_TICK_S, "tick_s": HOLD_TICK_S}}
    hold_s = run_item(api, hold)
    return {"sample_s": sample_s, "tick_overhead_ms": 1000 * (hold_s / HOLD_TICKS - HOLD_TICK_S)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds instead of 8 (< 2 min)")
    parser.add_argument("--json", action="store_true", help="one summary object on stdout")
    parser.add_argument("--clients", type=int, default=50)
    args = parser.parse_args()
    rounds = 3 if args.quick else 8
    t_start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="bench-sse-") as tmp:
        service = start_service(Path(tmp) / "service")
        try:
            anchor: list[dict[str, float]] = []
            load: list[dict[str, float]] = []
            stats: dict[str, Any] = {}
            load_averages: list[float] = []  # 1-min load average at the start of each round
            with service.client() as api:
                measure(api, 0)  # warm-up: first imports and detector files
                for i in range(rounds):
                    load_averages.append(os.getloadavg()[0])
                    anchor.append(measure(api, 1 + 2 * i))
                    polls0 = api.get("/api/stream/stats").json()
                    with Clients(service, args.clients) as clients:
                        load.append(measure(api, 2 + 2 * i))
                        polls1 = api.get("/api/stream/stats").json()
                    stats = {
                        "bytes_read_per_client": clients.bytes_read // args.clients,
                        "polls_during_round": polls1["polls"] - polls0["polls"],
                        "poll_ms_mean": 1000
                        * (polls1["poll_seconds_total"] - polls0["poll_seconds_total"])
                        / max(1, polls1["polls"] - polls0["polls"]),
                        "reconnects": clients.connections - args.clients,
                    }
        finally:
            service.stop()

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    summary = {
        "clients": args.clients,
        "rounds": rounds,
        "quick": args.quick,
        "sample_step_s": {"anchor": med(anchor, "sample_s"), "load": med(load, "sample_s")},
        "re_tick_overhead_ms": {"anchor": med(anchor, "tick_overhead_ms"), "load": med(load, "tick_overhead_ms")},
        "last_round_stream": stats,
        "load_average_1min": {
            "rounds_min": min(load_averages),
            "rounds_max": max(load_averages),
            "end": os.getloadavg()[0],
        },
        "wall_s": time.monotonic() - t_start,
    }
    summary["sample_step_ratio"] = summary["sample_step_s"]["load"] / summary["sample_step_s"]["anchor"]
    summary["re_tick_overhead_ratio"] = (
        summary["re_tick_overhead_ms"]["load"] / summary["re_tick_overhead_ms"]["anchor"]
    )
    summary["rounds_raw"] = {"anchor": anchor, "load": load}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    print(f"RunEngine step time, 0 vs {args.clients} SSE clients, {rounds} alternating rounds (medians)")
    print(f"{'':28}{'0 clients':>12}{f'{args.clients} clients':>14}{'ratio':>8}")
    s, t = summary["sample_step_s"], summary["re_tick_overhead_ms"]
    print(f"{'make_sample (image), s':28}{s['anchor']:12.3f}{s['load']:14.3f}{summary['sample_step_ratio']:8.3f}")
    tick_ratio = summary["re_tick_overhead_ratio"]
    print(f"{'RE overhead per tick, ms':28}{t['anchor']:12.3f}{t['load']:14.3f}{tick_ratio:8.3f}")
    print(
        f"stream (last round): {stats['polls_during_round']} polls, {stats['poll_ms_mean']:.1f} ms each, "
        f"{stats['bytes_read_per_client']} B per client, {stats['reconnects']} reconnects"
    )
    la = summary["load_average_1min"]
    print(
        f"target: ratio < 1.10; 1-min load average {la['rounds_min']:.1f}–{la['rounds_max']:.1f} over the rounds "
        f"({la['end']:.1f} at the end) on {os.cpu_count()} cores; {summary['wall_s']:.0f} s"
    )
    ratios = [b["sample_s"] / a["sample_s"] for a, b in zip(anchor, load, strict=True)]
    print(
        f"make_sample per round: {min(r['sample_s'] for r in anchor):.2f}–{max(r['sample_s'] for r in anchor):.2f} s "
        f"without clients, {min(r['sample_s'] for r in load):.2f}–{max(r['sample_s'] for r in load):.2f} s with them; "
        f"paired ratios median {statistics.median(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
