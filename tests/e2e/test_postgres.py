"""Scaled out: service state in PostgreSQL and the run store a separate Tiled server on a PostgreSQL catalog.

A throwaway PostgreSQL cluster (Debian's `initdb`/`pg_ctl`, run as the `postgres` user when the tests run
as root), a `tiled serve catalog` process on it, and `grainloop serve` pointed at both by settings alone,
as docs/operations.md tells an operator to do. Fails, not skips, without PostgreSQL: `.ci/run` installs it.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.e2e.test_service import create_key, service_env, start_service
from tests.manager.test_worker_and_watchdog import RECIPE, free_port, wait_for

TILED_KEY = "tiledtestkey0123"


def pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}")) or (
        [shutil.which(name)] if shutil.which(name) else []
    )
    assert found, f"PostgreSQL's {name} missing: apt-get install postgresql (.ci/run does)"
    return found[-1]


def as_postgres(cmd: list[str]) -> list[str]:
    """initdb refuses to run as root: as root, run PostgreSQL's tools as the `postgres` user."""
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="module")
def postgres() -> Iterator[str]:
    """host:port of a fresh cluster (trust auth on 127.0.0.1) with databases `grainloop` and `tiled`."""
    root = Path(tempfile.mkdtemp(prefix="grainloop-pg-"))  # not under pytest's root-only directory
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
    data, port = root / "data", free_port()
    subprocess.run(as_postgres([pg_bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"]),
                   check=True, capture_output=True, timeout=120)  # fmt: skip
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
    ctl = [pg_bin("pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "-t", "60"]
    subprocess.run(as_postgres([*ctl, "start"]), check=True, capture_output=True, timeout=90)
    try:
        for db in ("grainloop", "tiled"):
            subprocess.run([pg_bin("psql"), "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-c",
                            f"CREATE DATABASE {db}"], check=True, capture_output=True, timeout=30)  # fmt: skip
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run(as_postgres([*ctl, "-m", "fast", "stop"]), capture_output=True, timeout=90)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def tiled_server(postgres: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(API root, the directory it may read) of `tiled serve catalog` on the PostgreSQL catalog and tables."""
    root = tmp_path_factory.mktemp("tiled")
    readable = root / "service"  # the service's data_dir: the worker's HDF5 files are read from there
    port = free_port()
    cmd = [str(Path(sys.executable).with_name("tiled")), "serve", "catalog", f"postgresql+asyncpg://postgres@{postgres}/tiled",
           "--init", "--write", str(root / "files"), "--write", f"postgresql://postgres@{postgres}/tiled",
           "--read", str(readable), "--api-key", TILED_KEY, "--port", str(port)]  # fmt: skip
    log = open(root / "tiled.log", "wb")  # noqa: SIM115 — closed in teardown
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    uri = f"http://127.0.0.1:{port}/api/v1"
    try:

        def up() -> bool:
            try:
                return httpx.get(uri + "/", headers={"Authorization": f"Apikey {TILED_KEY}"}).status_code == 200
            except httpx.HTTPError:
                return proc.poll() is not None  # exited: the assert below says so

        wait_for(up, 60, "tiled serve catalog on PostgreSQL")
        assert proc.poll() is None, (root / "tiled.log").read_text()[-2000:]
        yield uri, readable
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()


def test_state_in_postgresql_and_runs_in_a_remote_tiled(postgres: str, tiled_server: tuple[str, Path]) -> None:
    from tiled.client import from_uri
    from tiled.queries import Key

    tiled_uri, data_dir = tiled_server
    data_dir.mkdir(exist_ok=True)
    env = {
        **service_env(data_dir),
        "GRAINLOOP_STATE_URL": f"postgresql+psycopg://postgres@{postgres}/grainloop",
        "GRAINLOOP_TILED_URI": tiled_uri,
        "GRAINLOOP_TILED_API_KEY": TILED_KEY,
        "GRAINLOOP_AGENTS": '["segmentation"]',
    }
    keys = {role: create_key(env, role, f"pg-{role}") for role in ("observer", "operator")}
    svc = start_service(env, data_dir, keys)
    try:
        svc.make_sample(240, recipe=RECIPE, campaign_id="pg", sample_id="PG-1", step=0, characterize="image")
        with svc.client("observer") as obs:
            body = obs.get("/api/runs", params={"campaign_id": "pg"}).json()
            assert body["tiled_uri"] == tiled_uri
            uids = {r["uid"] for r in body["runs"]}
            assert len(uids) >= 3

            def analysed() -> bool:
                return any(a["exit_status"] == "success" for a in obs.get("/api/analyses").json()["analyses"])

            wait_for(analysed, 120, "the segmentation of the survey")
    finally:
        svc.stop(60)
    assert not (data_dir / "state.sqlite").exists()  # the state went to PostgreSQL
    assert not (data_dir / "tiled").exists()  # no embedded store was started
    store = from_uri(tiled_uri, api_key=TILED_KEY)
    assert set(store.search(Key("start.campaign_id") == "pg")) >= uids  # the analysis run is there too
    survey = next(store[u] for u in uids if store[u].metadata["start"].get("stage") == "survey_image")
    image = survey["primary"]["stem_survey_haadf"].read()
    assert image.ndim == 2 and np.isfinite(image).all() and image.std() > 0
    analysis = store.search(Key("start.parent_uid") == survey.metadata["start"]["uid"])
    [record] = analysis.values()
    assert record.metadata["start"]["agent"] == "segmentation" and record.metadata["stop"]["exit_status"] == "success"

    # a restarted service reads its keys and history back from PostgreSQL
    svc = start_service(env, data_dir, keys)
    try:
        with svc.client("operator") as op:
            history = op.get("/api/history/get").json()["items"]
            assert [h["result"]["exit_status"] for h in history] == ["completed"]
            assert history[0]["kwargs"]["sample_id"] == "PG-1"
    finally:
        svc.stop(60)
