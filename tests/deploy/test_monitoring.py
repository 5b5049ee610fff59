"""deploy/prometheus and deploy/grafana against promtool and a real Prometheus scraping a real service.

promtool checks the rules, runs their unit tests (deploy/prometheus/alerts_test.yml) and checks the example
config. Then Debian's `prometheus` binary, configured from deploy/prometheus/prometheus.yml (1 s scrape and
evaluation, a temporary TSDB, 127.0.0.1 only), scrapes a `grainloop serve` started as tests/e2e starts it,
with a campaign in progress, plus a closed port in the same job; every expression of the Grafana dashboard
and of the alert rules is evaluated through its HTTP API. Missing promtool or prometheus is a failure, not
a skip. Every wait is bounded; both processes are terminated (then killed) in teardown.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from devices.envelope import FURNACE
from tests.e2e.test_service import GRAINLOOP, Service, create_key, service_env
from tests.manager.test_worker_and_watchdog import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "alerts_test.yml"
PROMETHEUS_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "grainloop.json"
MONITORING_DOC = ROOT / "docs" / "monitoring.md"
GRAFANA_BUILTINS = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
METRIC = re.compile(r"\b(grainloop_\w+|up)(?=\s*[{\[]|\s|\)|$)")


def tool(name: str) -> str:
    path = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").is_file() else None)
    if path is None:
        pytest.fail(f"{name} not found: install Debian's package prometheus (apt-get install -y prometheus)")
    return path


def promtool(*args: str) -> str:
    out = subprocess.run(
        [tool("promtool"), *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, f"promtool {' '.join(args)} failed:\n{out.stdout}{out.stderr}"
    return out.stdout + out.stderr


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in yaml.safe_load(ALERTS.read_text())["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def dashboard_exprs(dash: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every target, Grafana's variables resolved as a dashboard load would."""
    values = dict(GRAFANA_BUILTINS)
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            values[var["name"]] = var["allValue"]  # the default is All
        elif var["type"] == "custom":
            values[var["name"]] = var["current"]["value"]

    def resolve(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        assert name in values, f"unknown dashboard variable ${name}"
        return values[name]

    return [
        (panel["title"], re.sub(r"\$\{(\w+)\}|\$(\w+)", resolve, target["expr"]))
        for panel in dash["panels"]
        for target in panel.get("targets", [])
    ]


# -- promtool -------------------------------------------------------------------------------------------
def test_rules_pass_promtool_check() -> None:
    assert f"SUCCESS: {len(alert_rules())} rules found" in promtool("check", "rules", ALERTS.name)


def test_rules_unit_tests_pass_and_cover_every_alert_both_ways() -> None:
    assert "SUCCESS" in promtool("test", "rules", ALERT_TESTS.name)
    cases = [case for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for rule in alert_rules():
        mine = [case for case in cases if case["alertname"] == rule["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"no test where {rule['alert']} fires"
        assert any(not case["exp_alerts"] for case in mine), f"no test where {rule['alert']} stays quiet"


def test_example_config_passes_promtool_and_scrapes_the_service() -> None:
    promtool("check", "config", PROMETHEUS_CONFIG.name)
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    assert config["rule_files"] == [ALERTS.name]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "grainloop" and job["metrics_path"] == "/metrics"
    assert job["static_configs"] == [{"targets": ["127.0.0.1:8600"]}]


def test_every_alert_is_labelled_annotated_and_documented() -> None:
    rules = alert_rules()
    names = [rule["alert"] for rule in rules]
    assert len(set(names)) == len(names) == 6
    doc = MONITORING_DOC.read_text()
    for rule in rules:
        assert rule["labels"]["severity"] in ("critical", "warning"), rule["alert"]
        assert rule["annotations"]["summary"] and len(rule["annotations"]["description"]) > 100, rule["alert"]
        assert f"`{rule['alert']}`" in doc, f"{rule['alert']} is not in docs/monitoring.md"


def test_over_temperature_threshold_is_the_envelope_maximum() -> None:
    (rule,) = [rule for rule in alert_rules() if rule["alert"] == "GrainloopFurnaceOverTemperature"]
    limit = max(route.max_temperature_c for route in FURNACE.routes.values())
    assert rule["expr"] == f"grainloop_furnace_temperature_celsius > {limit:.0f}"
    assert f"{limit:.0f} °C" in rule["annotations"]["summary"]


# -- the dashboard, statically ---------------------------------------------------------------------------
def test_dashboard_model() -> None:
    dash = dashboard()
    variables = {var["name"]: var for var in dash["templating"]["list"]}
    assert variables["DS_PROMETHEUS"]["type"] == "datasource" and variables["DS_PROMETHEUS"]["query"] == "prometheus"
    ds = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    ids = [panel["id"] for panel in dash["panels"]]
    assert len(set(ids)) == len(ids)
    cells: set[tuple[int, int]] = set()
    for panel in dash["panels"]:
        g = panel["gridPos"]
        assert g["x"] >= 0 and g["x"] + g["w"] <= 24, panel["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not mine & cells, f"panel {panel['title']!r} overlaps another"
        cells |= mine
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == ds and panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == ds and target["expr"].strip(), panel["title"]
    if "instance" in variables:
        assert variables["instance"]["datasource"] == ds


# -- a real Prometheus scraping a real service -----------------------------------------------------------
class Prometheus:
    def __init__(self, url: str, live: str, dead: str) -> None:
        self.url, self.live, self.dead = url, live, dead
        self.http = httpx.Client(base_url=url, timeout=10)

    def get(self, path: str, **params: Any) -> dict[str, Any]:
        body = self.http.get(path, params=params).json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        return self.get("/api/v1/query", query=expr)["result"]

    def has(self, expr: str) -> bool:
        try:
            return bool(self.query(expr))
        except (httpx.HTTPError, ValueError):  # not listening yet, or 503 (plain text) until ready
            return False


class Stack:
    def __init__(self, service: Service, prometheus: Prometheus, campaign_id: str | None = None) -> None:
        self.service, self.prometheus, self.campaign_id = service, prometheus, campaign_id


def stop(proc: subprocess.Popen, sig: int, timeout_s: float) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`grainloop serve` as tests/e2e/test_service.py starts it (one operator key only: each costs seconds),
    Prometheus started alongside it, then a campaign that keeps running while Prometheus watches."""
    binary = tool("prometheus")
    work = tmp_path_factory.mktemp("monitoring")
    env = service_env(work / "service")
    key = create_key(env, "operator", "monitoring")
    live, dead = f"127.0.0.1:{env['GRAINLOOP_API_PORT']}", f"127.0.0.1:{free_port()}"  # dead: a closed port
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())  # the example, sped up and pointed at this service
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERTS)]
    config.pop("alerting", None)
    (job,) = config["scrape_configs"]
    job["static_configs"] = [{"targets": [live, dead]}]
    (work / "prometheus.yml").write_text(yaml.safe_dump(config))
    prom_port = free_port()
    logs = {"serve": work / "serve.log", "prometheus": work / "prometheus.log"}
    serve_log, prom_log = (open(path, "wb") for path in logs.values())  # noqa: SIM115 — closed in teardown
    serve = subprocess.Popen([GRAINLOOP, "serve"], env=env, stdout=serve_log, stderr=subprocess.STDOUT)
    prom_proc = subprocess.Popen(
        [
            binary,
            f"--config.file={work / 'prometheus.yml'}",
            f"--storage.tsdb.path={work / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{prom_port}",
            "--log.level=warn",
        ],
        stdout=prom_log,
        stderr=subprocess.STDOUT,
    )
    svc = Service(f"http://{live}", {"operator": key}, work / "service", serve)
    prom = Prometheus(f"http://127.0.0.1:{prom_port}", live, dead)
    stack = Stack(svc, prom)
    op = svc.client("operator")

    def alive() -> None:
        for name, proc in (("grainloop serve", serve), ("prometheus", prom_proc)):
            assert proc.poll() is None, f"{name} exited with {proc.returncode}"

    def service_up() -> bool:
        alive()
        try:
            return op.get("/api/status").json().get("worker_environment_exists") is True
        except httpx.HTTPError:
            return False

    def prometheus_up() -> bool:
        alive()
        return prom.has("vector(1)")

    def best_field() -> bool:
        alive()
        return op.get(f"/api/campaigns/{stack.campaign_id}").json()["best_trapped_field_t"] is not None

    try:
        try:
            wait_for(prometheus_up, 30, "prometheus to answer")
            wait_for(service_up, 120, "the service and its worker")
            body = {"agent": "sobol", "budget_experiments": 1000, "characterize": "none", "min_tc_k": None}
            r = op.post("/api/campaigns", json=body)
            assert r.status_code == 201, r.text
            stack.campaign_id = r.json()["campaign_id"]
            assert op.post(f"/api/campaigns/{stack.campaign_id}/start").json()["status"] == "running"
            wait_for(lambda: prom.has(f'up{{job="grainloop", instance="{live}"}} == 1'), 60, "the target up")
            wait_for(best_field, 90, "the campaign's first trapped field")
            wait_for(lambda: prom.has("grainloop_campaign_best_trapped_field_tesla"), 30, "its series scraped")
            wait_for(lambda: prom.has("count_over_time(grainloop_worker_up[1m]) >= 3"), 30, "three scrapes")
        except AssertionError as exc:
            serve_log.flush()
            prom_log.flush()
            tails = "".join(f"\n--- {n} (last 3000 characters)\n{p.read_text()[-3000:]}" for n, p in logs.items())
            raise AssertionError(f"{exc}{tails}") from None
        yield stack
    finally:
        if stack.campaign_id and serve.poll() is None:
            with contextlib.suppress(httpx.HTTPError):
                op.post(f"/api/campaigns/{stack.campaign_id}/stop")
        op.close()
        prom.http.close()
        stop(prom_proc, signal.SIGTERM, 10)
        stop(serve, signal.SIGTERM, 30)
        serve_log.close()
        prom_log.close()


@pytest.fixture(scope="module")
def prometheus(stack: Stack) -> Prometheus:
    return stack.prometheus


@pytest.fixture(scope="module")
def service(stack: Stack) -> Service:
    return stack.service


def test_every_dashboard_expression_returns_data(prometheus: Prometheus) -> None:
    exprs = dashboard_exprs(dashboard())
    assert len(exprs) >= 20
    problems = []
    for title, expr in exprs:
        body = prometheus.http.get("/api/v1/query", params={"query": expr}).json()
        if body["status"] != "success":
            problems.append(f"{title}: {expr}: {body.get('error')}")
        elif not body["data"]["result"]:
            problems.append(f"{title}: {expr}: no result")
    assert not problems, "\n".join(problems)
    instances = prometheus.get("/api/v1/label/instance/values", **{"match[]": "grainloop_worker_up"})
    assert prometheus.live in instances  # what the $instance variable lists


def test_dashboard_shows_every_exported_metric(service: Service) -> None:
    with service.client(None) as anon:
        text = anon.get("/metrics").text  # no key needed, as for Prometheus
    families = set(re.findall(r"^# TYPE (grainloop_\w+) ", text, re.MULTILINE))
    families = {f for f in families if not f.endswith("_created")}  # prometheus_client's creation times
    used = {m for _, expr in dashboard_exprs(dashboard()) for m in METRIC.findall(expr)}
    missing = {f for f in families if not any(m == f or m.startswith(f"{f}_") for m in used)}
    assert len(families) >= 18 and not missing, f"not on the dashboard: {sorted(missing)}"


def test_alert_expressions_on_a_healthy_service(prometheus: Prometheus) -> None:
    """Every alert expression evaluates; only the closed port is down; every metric it reads exists."""
    for rule in alert_rules():
        firing = {s["metric"].get("instance") for s in prometheus.query(rule["expr"])}
        expected = {prometheus.dead} if rule["alert"] == "GrainloopServiceDown" else set()
        assert firing == expected, f"{rule['alert']}: {rule['expr']} → {firing}"
        for metric in set(METRIC.findall(rule["expr"])):
            selector = f'{metric}{{job="grainloop", instance="{prometheus.live}"}}'
            assert prometheus.query(selector), f"{rule['alert']} reads {metric}, which the service does not export"


def test_prometheus_loads_and_evaluates_the_rules(prometheus: Prometheus) -> None:
    names = [rule["alert"] for rule in alert_rules()]

    def evaluated() -> list[dict[str, Any]]:
        rules = [r for g in prometheus.get("/api/v1/rules")["groups"] for r in g["rules"]]
        return rules if all(r["lastEvaluation"] > "2000" for r in rules) else []

    deadline = time.monotonic() + 15
    while not (rules := evaluated()):
        assert time.monotonic() < deadline, "the rules were not evaluated within 15 s"
        time.sleep(0.2)
    assert [r["name"] for r in rules] == names
    assert all(r["health"] == "ok" and not r.get("lastError") for r in rules), rules

    def service_down_pending() -> bool:
        alerts = prometheus.get("/api/v1/alerts")["alerts"]
        return [(a["labels"]["alertname"], a["labels"]["instance"], a["state"]) for a in alerts] == [
            ("GrainloopServiceDown", prometheus.dead, "pending")  # `for: 1m`: pending, not yet firing
        ]

    wait_for(service_down_pending, 15, "GrainloopServiceDown pending for the closed port only")
