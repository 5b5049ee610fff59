"""The demo's service part: start `grainloop serve` on embedded defaults, run a campaign through its API.

The service runs as its own process (as in production) on free loopback ports with its state under
`out_dir/service`; an operator key is made the way an operator would (`grainloop keys create`). Each
finished experiment is printed as it arrives; the report PNG is fetched from the API. On a terminal the
service is left running until Ctrl-C so the printed URLs can be opened; otherwise it is stopped.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from rich.console import Console

from controller.campaign.commands import print_step, readable
from controller.campaign.runner import StepOutcome
from controller.service.ports import free_loopback_port

MIN_TC_K = 30.0
"""The campaign's default Tc constraint (CampaignConfig.min_tc_k): only such samples count as best."""


@dataclass
class RunningService:
    url: str
    key: str
    proc: subprocess.Popen
    log_path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"ApiKey {self.key}"}, timeout=60)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def start_service(data_dir: Path, timeout_s: float = 180.0) -> RunningService:
    """`grainloop serve` in a child process; returns once its worker answers (or raises with its log's tail)."""
    grainloop = str(Path(sys.executable).with_name("grainloop"))
    env = {**os.environ, "GRAINLOOP_DATA_DIR": str(data_dir)}
    for name in ("API", "WORKER", "TILED", "ZMQ_IN", "ZMQ_OUT"):
        env[f"GRAINLOOP_{name}_PORT"] = str(free_loopback_port())
    key = subprocess.run(
        [grainloop, "keys", "create", "--role", "operator", "--name", "demo-operator"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir / "serve.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen([grainloop, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    service = RunningService(f"http://127.0.0.1:{env['GRAINLOOP_API_PORT']}", key, proc, log_path)
    deadline = time.monotonic() + timeout_s
    with service.client() as c:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            try:
                if c.get("/api/status").json().get("worker_environment_exists"):
                    return service
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
    service.stop()
    tail = log_path.read_text(errors="replace").splitlines()[-15:]
    raise RuntimeError("the service did not come up:\n" + "\n".join(tail))


def run_service_campaign(console: Console, out_dir: Path, budget: int, optimum_t: float) -> int:
    """Create and run a Bayesian campaign through the API, printing each experiment; 0 on success."""
    console.rule(f"grainloop serve: a Bayesian campaign of {budget} experiments through the REST API")
    with console.status("starting the service (API, manager, worker)…"):
        service = start_service(out_dir / "service")
    try:
        with service.client() as api:
            cid = api.post("/api/campaigns", json={"agent": "bayes", "budget_experiments": budget}).json()[
                "campaign_id"
            ]
            api.post(f"/api/campaigns/{cid}/start").raise_for_status()
            console.print(f"campaign {cid} started ({service.url}/api/campaigns/{cid})")
            console.print(f"follow and steer it on the dashboard: {service.url}/ (log in with the key {service.key})")
            shown, best = 0, None
            deadline = time.monotonic() + 60 * budget
            while time.monotonic() < deadline:
                steps = api.get(f"/api/campaigns/{cid}/observations").json()["steps"]
                finished = [s for s in steps if s["status"] in ("done", "failed")]
                for s in finished[shown:]:
                    value = (s["result"] or {}).get("trapped_field_t") if s["status"] == "done" else None
                    if (
                        value is not None
                        and (s["result"] or {}).get("tc_k", 0) >= 30
                        and (best is None or value > best)
                    ):
                        best = value
                    print_step(
                        console, StepOutcome(s["step"], s["recipe"], s["status"] == "failed", s["result"] or {}, best)
                    )
                shown = len(finished)
                summary = api.get(f"/api/campaigns/{cid}").json()
                if summary["status"] == "finished":
                    break
                time.sleep(0.5)
            png = out_dir / f"{cid}.png"
            png.write_bytes(api.get(f"/api/campaigns/{cid}/report.png").content)
        if summary.get("best"):
            found = summary["best"]["trapped_field_t"]
            console.print(
                f"best after {summary['observations']} experiments: [bold]{found:.3f} T[/bold] "
                f"({100 * found / optimum_t:.0f} % of the optimum) — {readable(summary['best']['recipe'])}"
            )
        console.print(f"stopped: {summary['stop_reason']}\ncampaign plot: {png}")
        with service.client() as api:
            store_uri = api.get("/api/runs", params={"limit": 1}).json().get("tiled_uri")
        console.print(
            f"dashboard: {service.url}/ (log in with the key {service.key})\n"
            f"API docs: {service.url}/docs\nmetrics:  {service.url}/metrics\n"
            f"status:   {service.url}/api/status (header 'Authorization: ApiKey {service.key}')\n"
            f"runs:     {store_uri} (Tiled; key in {out_dir / 'service' / 'tiled' / 'api_key'}, "
            f"browser: {str(store_uri).removesuffix('/api/v1')}/ui)\n"
            f"service log and state: {out_dir / 'service'}"
        )
        if sys.stdin.isatty():
            console.print("the service keeps running — Ctrl-C stops it")
            with contextlib.suppress(KeyboardInterrupt):
                service.proc.wait()
        return 0
    finally:
        service.stop()
