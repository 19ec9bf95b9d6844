"""deploy/monitoring: the Prometheus configuration, rules and dashboards read metrics the service really exports,
and Prometheus accepts them.

- Always: the files parse, the rules are well formed, every metric a rule reads is in a real service's /metrics
  (a service without sandboxes, and one with a sandbox backend for the sandbox pool's metrics), and the dashboards
  read only series the rules record.
- With promtool (on the PATH, or in the image that prometheus.Dockerfile builds on a Docker engine):
  `promtool check config`, `check rules` and `test rules` (rules_test.yml).
- With Docker and a sandbox backend: that image scrapes a live service and records every series it should, and
  serves the console page.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import LiveService, _free_port, missing_backend, start_service, stop_service

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
SERVICE_YAML = ROOT / "deploy" / "kubernetes" / "base" / "service.yaml"
BASE_IMAGE = os.environ.get("RLVR_BASE_IMAGE", "rlvr-base:bookworm")

# The sandbox executor's own series exist without a backend; the rest of rlvr_sandbox_* come from the backend.
SANDBOX_EXECUTOR_OWN = {"rlvr_sandbox_admitted", "rlvr_sandbox_capacity", "rlvr_sandbox_refused_batches_total"}
# Recorded series that stay empty in a short healthy run: no worker is killed and no item is masked.
EMPTY_IN_A_HEALTHY_RUN = {
    "job_checker:rlvr_worker_kills:rate5m",
    "job_failure_kind:rlvr_masked_items:rate1m",
    "job:rlvr_masked_items:ratio_rate5m",
}
METRIC = re.compile(r"(?<![\w:])rlvr_\w+(?![\w:])")
RECORDED = re.compile(r"\b[a-z_]+:rlvr_\w+:\w+\b")


def rules_file() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((MONITORING / "rules.yml").read_text())
    return data


def all_rules() -> list[dict[str, Any]]:
    return [rule for group in rules_file()["groups"] for rule in group["rules"]]


def recorded() -> set[str]:
    return {rule["record"] for rule in all_rules() if "record" in rule}


def metrics_read_by_rules() -> set[str]:
    return {name for rule in all_rules() for name in METRIC.findall(rule["expr"])}


def needs_sandbox(name: str) -> bool:
    return name.startswith("rlvr_sandbox_") and name not in SANDBOX_EXECUTOR_OWN


def exported(text: str) -> set[str]:
    """Every series name a /metrics page can hold, labelled families with no sample yet included."""
    from prometheus_client.parser import text_string_to_metric_families

    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + suffix for suffix in suffixes.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


BATCH = {
    "rewards": {"math": {}, "format": {"weight": 0.2}, "language": {"weight": 0.1, "target": "en"}},
    "items": [
        {"id": "a", "group": "g", "reference": "1/2", "completion": "<think>\nHalf.\n</think>\n<answer>$0.5$</answer>"},
        {"id": "b", "group": "g", "reference": "\\frac{", "completion": "so \\boxed{3}"},
        {
            "id": "c",
            "profile": "code",
            "completion": "```python\nprint(input())\n```",
            "tests": [{"type": "stdin_stdout", "input": "hi\n", "output": "hi\n"}],
        },
    ],
}


def score_a_batch(url: str) -> None:
    response = httpx.post(f"{url}/v1/score", json=BATCH, timeout=60)
    assert response.status_code == 200, response.text


# -- the files -----------------------------------------------------------------------------------------------


def test_prometheus_scrapes_the_service_every_5s() -> None:
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "rlvr")
    assert job["static_configs"] == [{"targets": ["rlvr:8000"]}]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "5s"
    assert config["rule_files"] == ["rules.yml"]


def test_the_kubernetes_config_keeps_the_rlvr_service_port() -> None:
    config = yaml.safe_load((MONITORING / "prometheus-kubernetes.yml").read_text())
    job = next(job for job in config["scrape_configs"] if job["job_name"] == "rlvr")
    keep = next(r for r in job["relabel_configs"] if r.get("action") == "keep")
    services = {s["metadata"]["name"]: s for s in yaml.safe_load_all(SERVICE_YAML.read_text()) if s}
    kept = [
        name
        for name, service in services.items()
        for port in service["spec"]["ports"]
        if re.fullmatch(keep["regex"], f"{name};{port['name']}")
    ]
    assert kept == ["rlvr"], "each pod scraped once, through the rlvr Service"
    assert config["rule_files"] == ["rules.yml"]


def test_the_rules_are_well_formed() -> None:
    rules = all_rules()
    records = [rule["record"] for rule in rules if "record" in rule]
    assert len(records) == len(set(records)), "a series recorded twice"
    for name in records:
        assert RECORDED.fullmatch(name), f"{name}: not level:metric:operations"
    for rule in rules:
        assert ("record" in rule) != ("alert" in rule) and rule["expr"].strip()
        if "alert" in rule:
            assert rule["labels"]["severity"] in {"warning", "critical"} and rule["annotations"]["summary"]


def dashboard_exprs() -> Iterator[Any]:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield pytest.param(target["expr"], id=f"dashboard:{panel['title']}:{target['refId']}")
    console = (MONITORING / "consoles" / "rlvr.html").read_text()
    for index, expr in enumerate(re.findall(r"`([^`]*)`", console)):
        yield pytest.param(expr, id=f"console:{index}")


@pytest.mark.parametrize("expr", list(dashboard_exprs()))
def test_the_dashboards_read_recorded_series(expr: str) -> None:
    assert not METRIC.findall(expr), "read a recorded series (rules.yml), not a raw metric"
    assert set(RECORDED.findall(expr)) <= recorded(), set(RECORDED.findall(expr)) - recorded()


def test_the_dashboard_layout() -> None:
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        columns, rows = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        area = {(x, y) for x in columns for y in rows}
        assert grid["x"] + grid["w"] <= 24 and not area & cells, f"{panel['title']} overlaps"
        cells |= area
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


# -- the metrics exist ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def plain_metrics() -> Iterator[set[str]]:
    """The metric names of a service without a sandbox backend, after one mixed batch."""
    service, server, thread = start_service(workers=1, sandbox={"backend": "none"})
    try:
        score_a_batch(service.url)
        yield exported(httpx.get(f"{service.url}/metrics", timeout=30).text)
    finally:
        stop_service(server, thread)


@pytest.fixture(scope="module")
def sandbox_metrics(sandboxed: LiveService) -> set[str]:
    score_a_batch(sandboxed.url)
    return exported(httpx.get(f"{sandboxed.url}/metrics", timeout=30).text)


@pytest.mark.parametrize("name", [pytest.param(n, id=n) for n in sorted(metrics_read_by_rules())])
def test_the_rules_read_metrics_the_service_exports(name: str, request: pytest.FixtureRequest) -> None:
    names: set[str] = request.getfixturevalue("sandbox_metrics" if needs_sandbox(name) else "plain_metrics")
    assert name in names, f"{name} is not on /metrics; the service has: {sorted(n for n in names if 'rlvr' in n)}"


# -- promtool ------------------------------------------------------------------------------------------------


def docker_ready() -> None:
    if shutil.which("docker") is None or subprocess.run(["docker", "info"], capture_output=True).returncode != 0:
        missing_backend("no Docker engine answers (needed to build the Prometheus image)")
    if subprocess.run(["docker", "image", "inspect", BASE_IMAGE], capture_output=True).returncode != 0:
        missing_backend(f"the base image {BASE_IMAGE} is missing (sandboxes/images/base.sh makes it)")


@pytest.fixture(scope="session")
def prometheus_image() -> Iterator[str]:
    """deploy/monitoring/prometheus.Dockerfile built (its build runs `promtool check config`), removed after."""
    docker_ready()
    tag = f"rlvr-prometheus:pytest-{secrets.token_hex(3)}"
    build = subprocess.run(
        ["docker", "build", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-f", str(MONITORING / "prometheus.Dockerfile")]
        + ["-t", tag, str(MONITORING)],
        capture_output=True,
        text=True,
        env={**os.environ, "DOCKER_BUILDKIT": "0"},
        timeout=900,
        check=False,
    )
    try:
        assert build.returncode == 0, (build.stdout + build.stderr)[-4000:]
        yield tag
    finally:
        subprocess.run(["docker", "rmi", "-f", tag], capture_output=True, check=False)


@pytest.fixture(scope="session")
def promtool(request: pytest.FixtureRequest) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Runs promtool in deploy/monitoring: the host's, else the one in the Prometheus image."""
    host = shutil.which("promtool")
    if host is not None:
        prefix = [host]
        cwd: Path | None = MONITORING
    else:
        image = request.getfixturevalue("prometheus_image")
        prefix = ["docker", "run", "--rm", "--network", "none", "--entrypoint", "promtool"]
        prefix += ["-v", f"{MONITORING}:/m:ro", "-w", "/m", image]
        cwd = None

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*prefix, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False)

    return run


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("check", "config", "prometheus.yml"), id="check-config"),
        pytest.param(("check", "rules", "rules.yml"), id="check-rules"),
        pytest.param(("test", "rules", "rules_test.yml"), id="test-rules"),
    ],
)
def test_promtool_accepts(args: tuple[str, ...], promtool: Callable[..., subprocess.CompletedProcess[str]]) -> None:
    run = promtool(*args)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "SUCCESS" in run.stdout + run.stderr


# -- end to end ----------------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.docker
def test_prometheus_records_every_series_from_a_live_service(
    prometheus_image: str, sandboxed: LiveService, tmp_path: Path
) -> None:
    """The image scrapes a live service (loopback, host network) every second and evaluates the rules every
    second: every recorded series appears, every rule is healthy, and the console page shows the checkers."""
    port = int(sandboxed.url.rsplit(":", 1)[1])
    web_port = _free_port()
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["scrape_configs"] = [{"job_name": "rlvr", "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}]
    tmp_path.chmod(0o755)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    shutil.copy(MONITORING / "rules.yml", tmp_path / "rules.yml")
    for path in tmp_path.iterdir():
        path.chmod(0o644)
    name = f"rlvr-prometheus-pytest-{secrets.token_hex(3)}"
    started = subprocess.run(
        ["docker", "run", "-d", "--name", name, "--network", "host", "-v", f"{tmp_path}:/cfg:ro", prometheus_image]
        + ["--config.file=/cfg/prometheus.yml", "--storage.tsdb.path=/prometheus"]
        + [f"--web.listen-address=127.0.0.1:{web_port}", "--web.console.templates=/etc/prometheus/consoles"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    api = f"http://127.0.0.1:{web_port}"
    try:
        expected = recorded() - EMPTY_IN_A_HEALTHY_RUN
        seen: set[str] = set()
        deadline = time.monotonic() + 90
        query = {"query": 'count by (__name__) ({__name__=~".+:rlvr_.+:.+"})'}
        while time.monotonic() < deadline and seen != expected:
            score_a_batch(sandboxed.url)
            try:
                answer = httpx.get(f"{api}/api/v1/query", params=query, timeout=5)
            except httpx.TransportError:
                answer = None  # not listening yet
            if answer is not None and answer.status_code == 200:  # 503 while it starts
                seen = {r["metric"]["__name__"] for r in answer.json()["data"]["result"]} & expected
            time.sleep(1)
        assert seen == expected, f"never recorded: {sorted(expected - seen)}"
        groups = httpx.get(f"{api}/api/v1/rules", timeout=5).json()["data"]["groups"]
        unhealthy = {r["name"]: r.get("lastError") for g in groups for r in g["rules"] if r["health"] != "ok"}
        assert not unhealthy
        page = httpx.get(f"{api}/consoles/rlvr.html", timeout=5)
        assert page.status_code == 200
        assert all(f"<td>{checker}</td>" in page.text for checker in ("math", "format", "code"))
    finally:
        logs = subprocess.run(["docker", "logs", "--tail", "20", name], capture_output=True, text=True, check=False)
        subprocess.run(["docker", "rm", "-fv", name], capture_output=True, check=False)  # -v: its /prometheus volume
        print(logs.stderr[-2000:])  # noqa: T201  (shown when the test fails)
