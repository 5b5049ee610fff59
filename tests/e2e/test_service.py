"""The service as a user meets it: `grainloop keys create`, `grainloop serve`, real HTTP on 127.0.0.1.

One service per module (its worker takes seconds to start); every wait is bounded; teardown sends
SIGTERM and kills what does not exit.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import httpx
import numpy as np
import pytest
from bluesky_queueserver_api import BPlan
from bluesky_queueserver_api.comm_base import HTTPClientError
from bluesky_queueserver_api.http import REManagerAPI

from tests.manager.test_worker_and_watchdog import RECIPE, free_port, wait_for

GRAINLOOP = str(Path(sys.executable).with_name("grainloop"))


class Service:
    def __init__(self, url: str, keys: dict[str, str], data_dir: Path, proc: subprocess.Popen) -> None:
        self.url, self.keys, self.data_dir, self.proc = url, keys, data_dir, proc

    def client(self, role: str | None) -> httpx.Client:
        headers = {"Authorization": f"ApiKey {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def rm(self, role: str) -> REManagerAPI:
        rm = REManagerAPI(http_server_uri=self.url, http_auth_provider=None)
        rm.set_authorization_key(api_key=self.keys[role])
        return rm

    def make_sample(self, timeout_s: float, **kwargs: Any) -> None:
        """Queue one `make_sample` as the operator, run the queue, and wait for it to complete."""
        rm = self.rm("operator")
        try:
            rm.wait_for_idle(timeout=60)
            rm.item_add(BPlan("make_sample", **kwargs))
            rm.queue_start()
            rm.wait_for_idle(timeout=timeout_s)
            assert rm.history_get()["items"][-1]["result"]["exit_status"] == "completed"
        finally:
            rm.close()

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM, then kill what has not exited within `timeout_s`."""
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def service_env(data_dir: Path) -> dict[str, str]:
    """The environment of a `grainloop serve` on free loopback ports with a quick heartbeat."""
    ports = ("API", "WORKER", "TILED", "ZMQ_IN", "ZMQ_OUT")
    return {
        **os.environ,
        "GRAINLOOP_DATA_DIR": str(data_dir),
        **{f"GRAINLOOP_{name}_PORT": str(free_port()) for name in ports},
        "GRAINLOOP_HEARTBEAT_INTERVAL_S": "0.25",
        "GRAINLOOP_HEARTBEAT_TIMEOUT_S": "4",
    }


def create_key(env: dict[str, str], role: str, name: str) -> str:
    """`grainloop keys create` as a user runs it; returns what it printed (the key)."""
    out = subprocess.run(
        [GRAINLOOP, "keys", "create", "--role", role, "--name", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return out.stdout.strip()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("service")
    env = service_env(data_dir)
    keys = {}
    for role in ("observer", "operator", "admin", "agent"):
        keys[role] = create_key(env, role, f"test-{role}")
        assert keys[role].startswith("gl_") and "\n" not in keys[role]  # the key alone on stdout
    svc = start_service(env, data_dir, keys)
    try:
        yield svc
    finally:
        svc.stop()


def start_service(env: dict[str, str], data_dir: Path, keys: dict[str, str]) -> Service:
    """`grainloop serve` with `env`; returns once its worker answers (and stops it again if it never does)."""
    with open(data_dir / "serve.log", "ab") as log:
        proc = subprocess.Popen([GRAINLOOP, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    svc = Service(f"http://127.0.0.1:{env['GRAINLOOP_API_PORT']}", keys, data_dir, proc)
    try:
        with svc.client("observer") as c:

            def up() -> bool:
                try:
                    return c.get("/api/status").json().get("worker_environment_exists") is True
                except httpx.HTTPError:
                    return False

            wait_for(up, 120, "the service and its worker")
    except BaseException:
        svc.stop()
        raise
    return svc


def wait_status(svc: Service, condition: Callable[[dict[str, Any]], bool], timeout_s: float, what: str) -> None:
    with svc.client("observer") as c:
        wait_for(lambda: condition(c.get("/api/status").json()), timeout_s, what)


def test_keys_and_roles(service: Service) -> None:
    with service.client(None) as anon:
        assert anon.get("/api/status").status_code == 401
    with service.client("observer") as obs:
        assert obs.get("/api/auth/whoami").json() == {
            "name": "test-observer",
            "role": "observer",
            "key_id": service.keys["observer"].split("_")[1],
        }
        assert (
            obs.post("/api/queue/item/add", json={"item": {"name": "hold", "kwargs": {"duration_s": 1}}}).status_code
            == 403
        )
        assert obs.post("/api/re/pause", json={}).status_code == 403
    with service.client("agent") as agent:
        assert (
            agent.post("/api/queue/item/add", json={"item": {"name": "hold", "kwargs": {"duration_s": 1}}}).status_code
            == 403
        )
        assert agent.post("/api/queue/start").status_code == 403
    with httpx.Client(base_url=service.url, headers={"Authorization": "ApiKey gl_000000000000_nope"}) as bad:
        assert bad.get("/api/status").status_code == 401
    # the database holds no key in clear
    raw = (service.data_dir / "state.sqlite").read_bytes()
    assert all(key.split("_", 2)[2].encode() not in raw for key in service.keys.values())


def test_re_manager_api_drives_the_queue(service: Service) -> None:
    rm = service.rm("operator")
    try:
        rm.wait_for_idle(timeout=60)
        before = len(rm.history_get()["items"])
        rm.item_add(BPlan("hold", duration_s=1.5))
        rm.item_add(BPlan("hold", duration_s=0.2))
        assert [i["name"] for i in rm.queue_get()["items"]] == ["hold", "hold"]
        rm.queue_start()
        wait_status(service, lambda s: s["re_state"] == "running", 30, "the first plan")
        rm.re_pause(option="immediate")
        rm.wait_for_idle_or_paused(timeout=30)
        assert rm.status()["manager_state"] == "paused"
        rm.re_resume()
        rm.wait_for_idle(timeout=60)
        items = rm.history_get()["items"][before:]
        assert [i["result"]["exit_status"] for i in items] == ["completed", "completed"]
        assert all(i["user"] == "test-operator" for i in items)
        with pytest.raises(HTTPClientError, match="greater than 0"):
            rm.item_add(BPlan("hold", duration_s=-1))
        with pytest.raises(HTTPClientError, match="unknown plan"):
            rm.item_add(BPlan("rm_rf"))
    finally:
        rm.close()


def test_bad_and_unsafe_bodies(service: Service) -> None:
    hot = {**RECIPE, "route": "tube", "pressure_mpa": 0.0, "dwell_temperature_c": 1150.0}
    item = {"name": "make_sample", "kwargs": {"recipe": hot, "campaign_id": "x", "sample_id": "x-0", "step": 0}}
    with service.client("operator") as op:
        r = op.post("/api/queue/item/add", json={"item": item})
        assert r.status_code == 409 and "1100" in r.json()["detail"] and "route tube" in r.json()["detail"]
        r = op.post("/api/queue/item/add", json={"item": {"name": "hold", "kwargs": {"duration_s": "soon"}}})
        assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "item", "kwargs", "duration_s"]
        r = op.post("/api/queue/item/add", json={"itme": {}})
        assert r.status_code == 422
        assert op.get("/api/queue/get").json()["items"] == []  # nothing was queued
        entries = op.get("/api/audit", params={"limit": 5}).json()["entries"]
        assert entries[0]["principal"] == "test-operator" and entries[0]["outcome"] == "422"
        assert any(e["outcome"] == "409" for e in entries)


def test_campaign_through_the_api(service: Service) -> None:
    with service.client("operator") as op:
        r = op.post("/api/campaigns", json={"agent": "bayes", "budget_experiments": 5, "characterize": "none"})
        assert r.status_code == 201, r.text
        cid = r.json()["campaign_id"]
        assert op.post(f"/api/campaigns/{cid}/start").json()["status"] == "running"
        wait_for(lambda: op.get(f"/api/campaigns/{cid}").json()["status"] == "finished", 240, "the campaign")
        summary = op.get(f"/api/campaigns/{cid}").json()
        assert summary["observations"] == 5 and summary["stop_reason"] == "budget of 5 experiments used"
        steps = op.get(f"/api/campaigns/{cid}/observations").json()["steps"]
        assert [s["step"] for s in steps] == [0, 1, 2, 3, 4] and all(s["status"] == "done" for s in steps)
        png = op.get(f"/api/campaigns/{cid}/report.png")
        assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
        runs = op.get("/api/runs", params={"campaign_id": cid}).json()["runs"]
        assert {r["step"] for r in runs} == {0, 1, 2, 3, 4}
        metrics = op.get("/metrics").text
        assert 'grainloop_plans_total{exit_status="completed"}' in metrics
        assert f'grainloop_campaign_experiments{{campaign_id="{cid}"}}' not in metrics  # finished: not listed
        assert "grainloop_agent_decision_seconds_count" in metrics


def test_runs_land_in_the_tiled_store(service: Service) -> None:
    """A sample imaged through the queue: every run in the embedded Tiled, the image an external HDF5 asset."""
    from tiled.client import from_uri
    from tiled.queries import Key

    service.make_sample(180, recipe=RECIPE, campaign_id="store-test", sample_id="ST-1", step=0, characterize="image")
    with service.client("observer") as obs:
        body = obs.get("/api/runs", params={"campaign_id": "store-test"}).json()
    uids = [r["uid"] for r in body["runs"]]
    assert len(uids) >= 3  # mill, sinter, survey, properties
    key = (service.data_dir / "tiled" / "api_key").read_text().strip()
    client = from_uri(body["tiled_uri"], api_key=key)
    found = {u: client[u].metadata["start"] for u in client.search(Key("start.campaign_id") == "store-test")}
    # the analysis agents' runs carry the campaign too and land whenever their analysis ends
    plan_runs = {u for u, start in found.items() if "parent_uid" not in start}
    assert plan_runs == set(uids)
    assert all(start["parent_uid"] in uids for u, start in found.items() if u not in plan_runs)
    survey = client[next(u for u in uids if found[u].get("stage") == "survey_image")]
    assert survey.metadata["stop"]["exit_status"] == "success"
    image_node = survey["primary"]["stem_survey_haadf"]
    image = image_node.read()
    assert image.ndim == 2 and image.shape[0] == image.shape[1] >= 256 and np.isfinite(image).all()
    source = image_node.data_sources()[0]
    asset = source.assets[0].data_uri
    assert asset.startswith("file://") and asset.endswith(".h5") and str(service.data_dir / "worker") in asset
    with h5py.File(asset.removeprefix("file://localhost"), "r") as fh:  # served from the file, not a copy
        np.testing.assert_array_equal(np.squeeze(fh[source.parameters["dataset"]][()]), image)
    links = body["runs"][0]
    with httpx.Client(timeout=30) as plain:
        meta = plain.get(links["tiled"], headers={"Authorization": f"Apikey {key}"})
        assert meta.status_code == 200 and meta.json()["data"]["id"] == links["uid"]
        assert plain.get(links["tiled_ui"]).status_code == 200


def test_metrics_pass_promtool(service: Service) -> None:
    assert shutil.which("promtool"), "promtool missing: apt-get install prometheus (.ci/run does)"
    with service.client("observer") as obs:
        wait_for(lambda: obs.get("/api/devices").status_code == 200, 30, "the first device readings")
        text = obs.get("/metrics").text
    out = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stdout + out.stderr
    for name in (
        "grainloop_manager_state",
        "grainloop_re_state",
        "grainloop_suspended",
        "grainloop_queue_items",
        "grainloop_worker_up",
        "grainloop_furnace_temperature_celsius",
        "grainloop_mill_speed_hertz",
        "grainloop_worker_restarts_total",
        "grainloop_http_request_duration_seconds_bucket",
    ):
        assert f"\n{name}" in text, name


def test_an_agent_cannot_bypass_approval(service: Service) -> None:
    with service.client("operator") as op, service.client("agent") as agent:
        body = {"agent": "sobol", "budget_experiments": 2, "characterize": "none", "mode": "suggest"}
        cid = op.post("/api/campaigns", json=body).json()["campaign_id"]
        op.post(f"/api/campaigns/{cid}/start")
        r = agent.post(f"/api/campaigns/{cid}/proposals", json={"recipe": RECIPE, "reasoning": {"mean_t": 1.2}})
        assert r.status_code == 202 and r.json()["status"] == "awaiting_approval"
        wait_for(lambda: len(op.get("/api/approvals").json()["approvals"]) >= 1, 30, "the approval")
        mine = [a for a in op.get("/api/approvals").json()["approvals"] if a["reasoning"].get("proposed_by")]
        assert len(mine) == 1 and mine[0]["reasoning"]["mean_t"] == 1.2
        approval_id = mine[0]["approval_id"]
        assert agent.post(f"/api/approvals/{approval_id}/approve").status_code == 403
        assert agent.get(f"/api/campaigns/{cid}/observations").status_code == 200  # what it proposes from
        assert agent.get("/api/recipe/schema").status_code == 200
        assert agent.get("/api/audit").status_code == 403 and agent.get("/api/approvals").status_code == 403
        assert op.get("/api/queue/get").json()["items"] == []
        unsafe = agent.post(f"/api/campaigns/{cid}/proposals", json={"recipe": {**RECIPE, "pressure_mpa": 250.0}})
        assert unsafe.status_code == 409 and "pressure_mpa" in unsafe.json()["detail"]
        assert op.post(f"/api/approvals/{approval_id}/approve").json()["status"] == "approved"
        step = mine[0]["step"]
        wait_for(
            lambda: any(
                s["step"] == step and s["status"] == "done"
                for s in op.get(f"/api/campaigns/{cid}/observations").json()["steps"]
            ),
            60,
            "the approved recipe to be made",
        )
        op.post(f"/api/campaigns/{cid}/stop")


def test_kill_9_of_the_worker_mid_campaign(service: Service) -> None:
    with service.client("operator") as op:
        restarts = op.get("/api/status").json()["worker_restarts"]
        body = {"agent": "sobol", "budget_experiments": 3, "characterize": "full"}
        cid = op.post("/api/campaigns", json=body).json()["campaign_id"]
        op.post(f"/api/campaigns/{cid}/start")
        wait_for(lambda: op.get("/api/status").json()["re_state"] == "running", 60, "an experiment")
        pid = op.get("/api/status").json()["worker_pid"]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: op.get("/api/status").json()["worker_restarts"] == restarts + 1, 60, "the restart")
        relays = op.get("/api/devices")
        wait_for(lambda: op.get(f"/api/campaigns/{cid}").json()["status"] == "finished", 300, "the campaign")
        steps = op.get(f"/api/campaigns/{cid}/observations").json()["steps"]
        assert [(s["step"], s["status"]) for s in steps] == [(0, "done"), (1, "done"), (2, "done")]
        history = [
            h for h in op.get("/api/history/get").json()["items"] if (h.get("meta") or {}).get("campaign_id") == cid
        ]
        lost = [h for h in history if h["result"]["msg"].startswith("worker lost")]
        assert len(lost) == 1 and "relays cut" in lost[0]["result"]["msg"]
        assert sorted(h["meta"]["step"] for h in history if h["result"]["exit_status"] == "completed") == [0, 1, 2]
        devices = op.get("/api/devices").json()
        assert devices["relays"]["armed"] is True and devices["relays"]["previous"]["armed"] is False
        assert relays.status_code in (200, 503)
        assert "grainloop_worker_restarts_total 1.0" in op.get("/metrics").text or restarts > 0


def test_documents_reach_a_plain_remote_dispatcher(service: Service) -> None:
    """A subscriber in another process' shoes: bluesky's RemoteDispatcher with grainloop's msgpack."""
    from tests.stream.test_stream import Receiver

    with service.client("operator") as op:
        out = op.get("/api/status").json()["document_stream"]
        receiver = Receiver(out.removeprefix("tcp://"))
        try:
            kwargs = {
                "recipe": RECIPE,
                "campaign_id": "stream",
                "sample_id": "stream-0",
                "step": 0,
                "characterize": "image",
            }
            for _ in range(3):  # a subscriber that joins late misses what came before: PUB/SUB
                op.post("/api/queue/item/add", json={"item": {"name": "make_sample", "kwargs": kwargs}})
                op.post("/api/queue/start")
                wait_for(lambda: op.get("/api/status").json()["manager_state"] == "idle", 120, "the sample")
                if any(n == "stop" for n, _ in receiver.docs):
                    break
            # Analysis runs of earlier tests' samples (a late orientation map, a gap the filler reports) may
            # still arrive: they carry their own source's campaign. Every source run heard here is this test's.
            starts = [d for n, d in receiver.docs if n == "start" and "parent_uid" not in d]
            assert starts and all(d["campaign_id"] == "stream" for d in starts), [d.get("campaign_id") for d in starts]
            stages = {d["stage"] for d in starts}
            assert {"survey_image", "measure_properties"} <= stages, stages
            assert any(n == "resource" for n, _ in receiver.docs)  # images travel as references, not pixels
        finally:
            receiver.stop()


def test_lock(service: Service) -> None:
    with service.client("operator") as op, service.client("admin") as admin:
        r = op.post("/api/lock", json={"queue": True, "lock_key": "k1", "note": "maintenance"})
        assert r.status_code == 200 and r.json()["lock_info"]["queue"] is True
        item = {"item": {"name": "hold", "kwargs": {"duration_s": 0.1}}}
        assert op.post("/api/queue/item/add", json=item).status_code == 423
        assert op.post("/api/queue/item/add", json={**item, "lock_key": "k1"}).status_code == 200
        assert op.post("/api/unlock", json={"lock_key": "wrong"}).status_code == 409
        assert admin.post("/api/unlock", json={}).status_code == 200  # an admin may unlock without the key
        op.post("/api/queue/clear", json={})
        assert op.get("/api/status").json()["lock"] == {"environment": False, "queue": False}


def test_analysis_agents_publish_runs_figures_and_latency(service: Service) -> None:
    """A fully characterised sample: both agent processes analyse it off the stream; results in the API and Tiled."""
    from tiled.client import from_uri
    from tiled.queries import Key

    service.make_sample(240, recipe=RECIPE, campaign_id="analysis-test", sample_id="AN-1", step=0, characterize="full")
    with service.client("observer") as obs:
        uids = {r["uid"] for r in obs.get("/api/runs", params={"campaign_id": "analysis-test"}).json()["runs"]}

        def analyses() -> list[dict[str, Any]]:
            return obs.get("/api/analyses", params={"campaign_id": "analysis-test"}).json()["analyses"]

        wait_for(lambda: {a["agent"] for a in analyses()} >= {"segmentation", "orientation"}, 180, "both analyses")
        records = {a["agent"]: a for a in analyses()}
        for agent, figures in (("segmentation", {"overlay"}), ("orientation", {"ipf", "misorientation"})):
            record = records[agent]
            assert record["exit_status"] == "success", record["reason"]
            assert record["parent_uid"] in uids and record["sample_id"] == "AN-1"
            assert record["data"]["grain_count"] > 0
            assert record["latency_s"] is not None and 0 <= record["latency_s"] < 180
            assert set(record["images"]) == figures
            for url in record["images"].values():
                png = obs.get(url)
                assert png.status_code == 200 and png.content.startswith(b"\x89PNG")
                assert httpx.get(service.url + url).status_code == 401  # figures need a key too
        assert obs.get(f"/api/analyses/{records['orientation']['uid']}/overlay.png").status_code == 404
        metrics = obs.get("/metrics").text
        tiled_uri = obs.get("/api/runs").json()["tiled_uri"]
    for agent in ("segmentation", "orientation"):
        assert f'grainloop_analysis_runs_total{{agent="{agent}",exit_status="success"}}' in metrics
        count = next(
            line
            for line in metrics.splitlines()
            if line.startswith(f'grainloop_analysis_seconds_count{{agent="{agent}"')
        )
        assert float(count.split()[-1]) >= 1
        assert f'grainloop_analysis_agent_up{{agent="{agent}"}} 1.0' in metrics
    key = (service.data_dir / "tiled" / "api_key").read_text().strip()
    store = from_uri(tiled_uri, api_key=key)
    for record in records.values():  # the agent sends each run to the proxy first, then to the store

        def stored(record: dict[str, Any] = record) -> bool:
            found = store.search(Key("start.parent_uid") == record["parent_uid"])
            mine = [u for u in found if found[u].metadata["start"].get("agent") == record["agent"]]
            return mine == [record["uid"]] and found[record["uid"]].metadata.get("stop") is not None

        wait_for(stored, 30, f"the {record['agent']} analysis run in the store")
        assert store[record["uid"]].metadata["stop"]["exit_status"] == "success"


def test_a_killed_agent_process_is_restarted(service: Service) -> None:
    with service.client("observer") as obs:
        before = obs.get("/api/analyses").json()["agents"]["segmentation"]
        assert before["up"] and before["pid"]
        os.kill(before["pid"], signal.SIGKILL)

        def back() -> bool:
            now = obs.get("/api/analyses").json()["agents"]["segmentation"]
            return now["up"] and now["pid"] != before["pid"] and now["restarts"] == before["restarts"] + 1

        wait_for(back, 30, "the segmentation agent restarted")
        assert "grainloop_analysis_agent_restarts_total" in obs.get("/metrics").text
