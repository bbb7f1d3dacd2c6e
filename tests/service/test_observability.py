"""Observability: the operations files under deploy/ and the metrics they rely on.

- deploy/prometheus/alerts.yml: `promtool check rules`, and its unit tests
  (deploy/prometheus/alerts.test.yml) with `promtool test rules`;
- deploy/grafana/s3sync-sidecar.json: a Grafana dashboard whose every query parses (checked by
  promtool as recording rules) and names only metrics the sidecar exports;
- deploy/cloudwatch/: the CloudWatch agent's configuration for ECS service discovery, matching
  the docker labels of the task definitions;
- the real command's /metrics: ready for alerts (labelled series at 0 from the start, no
  `_created` series, process metrics, build info, volume, poll interval), holding every metric
  the three files above name, and moving by the right amounts as files are synced.

promtool comes with Debian's `prometheus` package (.ci/run installs it). Without it the promtool
tests are skipped, saying so, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from support import ROOT
from support.bucket import Bucket
from support.environments import sidecar_environment
from support.local_http import free_port
from support.local_http import http_get as get
from support.metrics import Scrape, scrape, series
from support.waiting import eventually, in_thread

import sidecar
from sidecar.skips import SkipReason

DEPLOY = ROOT / "deploy"
ALERTS = DEPLOY / "prometheus" / "alerts.yml"
ALERT_TESTS = DEPLOY / "prometheus" / "alerts.test.yml"
DASHBOARD = DEPLOY / "grafana" / "s3sync-sidecar.json"
CWAGENT = DEPLOY / "cloudwatch" / "cwagent-config.json"
CWAGENT_PROMETHEUS = DEPLOY / "cloudwatch" / "prometheus.yaml"
TASKDEF = DEPLOY / "ecs-taskdef.json"

METRIC_NAME = re.compile(r"\b((?:s3sync|process)_[a-z0-9_]+)\b")


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        reason = "promtool is not installed (apt-get install prometheus; .ci/run does)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason}: under CI=true nothing is skipped")
        pytest.skip(reason)
    return found


def run_promtool(*args: str, cwd: Path) -> str:
    result = subprocess.run(
        [promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout + result.stderr


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def dashboard_queries() -> list[str]:
    return [
        target["expr"] for panel in dashboard()["panels"] for target in panel.get("targets", [])
    ]


def cwagent_prometheus() -> dict[str, Any]:
    return dict(json.loads(CWAGENT.read_text())["logs"]["metrics_collected"]["prometheus"])


# -- alerts --------------------------------------------------------------------------------------


def test_alert_rules_pass_promtool_check() -> None:
    output = run_promtool("check", "rules", ALERTS.name, cwd=ALERTS.parent)
    assert f"SUCCESS: {len(alert_rules())} rules found" in output


def test_alert_rules_unit_tests_pass() -> None:
    output = run_promtool("test", "rules", ALERT_TESTS.name, cwd=ALERTS.parent)
    assert "SUCCESS" in output


def test_every_alert_is_shown_firing_by_a_unit_test() -> None:
    """An alert without a case where it fires could be broken without any test failing."""
    rules = alert_rules()
    names = {rule["alert"] for rule in rules}
    assert {
        "S3SyncLagHigh",
        "S3SyncTransferErrors",
        "S3SyncPollStale",
        "S3SyncDeleteGuardTripped",
        "S3SyncCredentialsExpiring",
        "S3SyncVolumeNearlyFull",
        "S3SyncRestarted",
        "S3SyncTargetDown",
        "S3SyncTargetAbsent",
        "S3SyncChangeFeedFailing",
        "S3SyncFlushTimeouts",
    } <= names
    fired = {
        case["alertname"]
        for test in yaml.safe_load(ALERT_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert names <= fired, f"no unit test shows these alerts firing: {sorted(names - fired)}"
    for rule in rules:
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading: lower case, punctuation dropped, spaces to
    hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_every_alert_links_its_runbook_in_the_readme() -> None:
    """Each alert's runbook_url is the README's URL (a placeholder to replace, explained in
    deploy/README.md and alerts.yml) and the anchor of a section of the README's Runbooks
    named for the alert."""
    readme = (ROOT / "README.md").read_text()
    runbooks = readme[readme.index("\n## Runbooks\n") :]
    runbooks = runbooks[: runbooks.index("\n## ", 1)]
    sections = {
        github_anchor(heading): heading
        for heading in re.findall(r"^### (.+)$", runbooks, re.MULTILINE)
    }
    for rule in alert_rules():
        url = rule["annotations"]["runbook_url"]
        base, _, anchor = url.partition("#")
        assert base == "REPLACE_WITH_README_URL", url
        assert sections.get(anchor) == rule["alert"], (rule["alert"], url, sorted(sections))
    assert set(sections.values()) == {rule["alert"] for rule in alert_rules()}, "no stale runbook"
    assert "REPLACE_WITH_README_URL" in (DEPLOY / "README.md").read_text()


# -- Grafana dashboard ---------------------------------------------------------------------------


def test_dashboard_shape() -> None:
    board = dashboard()
    assert board["uid"] == "s3sync-sidecar" and board["title"]
    assert isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    ids = [panel["id"] for panel in board["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            assert 'job=~"$job"' in target["expr"], (panel["title"], target["expr"])
    assert len(dashboard_queries()) >= 20


def test_dashboard_queries_are_valid_promql(tmp_path: Path) -> None:
    """Each query, with Grafana's variables filled in, as a recording rule: promtool parses it."""
    rules = [
        {
            "record": f"dashboard:query_{index}",
            "expr": expr.replace("$__rate_interval", "5m")
            .replace("$job", ".*")
            # No $instance left either, or promtool would see a label value "$instance".
            .replace("$instance", ".*"),
        }
        for index, expr in enumerate(dashboard_queries())
    ]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    output = run_promtool("check", "rules", path.name, cwd=tmp_path)
    assert f"SUCCESS: {len(rules)} rules found" in output


# -- CloudWatch agent ----------------------------------------------------------------------------


def test_cloudwatch_agent_discovers_the_sidecar_by_its_docker_labels() -> None:
    config = cwagent_prometheus()
    taskdef = json.loads(TASKDEF.read_text())
    (sidecar_container,) = [
        c for c in taskdef["containerDefinitions"] if c["name"] == "s3sync-sidecar"
    ]
    labels = sidecar_container["dockerLabels"]
    discovery = config["ecs_service_discovery"]
    docker = discovery["docker_label"]
    assert docker["sd_port_label"] == "ECS_PROMETHEUS_EXPORTER_PORT"
    assert docker["sd_metrics_path_label"] == "ECS_PROMETHEUS_METRICS_PATH"
    assert docker["sd_job_name_label"] == "ECS_PROMETHEUS_JOB_NAME"
    assert set(docker.values()) == set(labels)
    for declaration in config["emf_processor"]["metric_declaration"]:
        assert declaration["source_labels"] == ["job"]
        assert re.fullmatch(declaration["label_matcher"], labels["ECS_PROMETHEUS_JOB_NAME"])
    scrape = yaml.safe_load(CWAGENT_PROMETHEUS.read_text())
    files = [
        f for job in scrape["scrape_configs"] for sd in job["file_sd_configs"] for f in sd["files"]
    ]
    assert files == [discovery["sd_result_file"]]


def test_cloudwatch_agent_scrape_config_is_valid_prometheus_config() -> None:
    output = run_promtool("check", "config", CWAGENT_PROMETHEUS.name, cwd=CWAGENT_PROMETHEUS.parent)
    assert "SUCCESS" in output


# -- /metrics of the real command ----------------------------------------------------------------


@pytest.fixture
async def scraped(run_sidecar, bucket: Bucket, tmp_path: Path) -> dict[str, Any]:
    """The first /metrics of a sidecar that has just restored an empty prefix: samples by name,
    a list of (labels, value) each."""
    port = free_port()
    folder = tmp_path / "data"
    process = run_sidecar(
        [],
        sidecar_environment(bucket, folder, SYNC_POLL_INTERVAL="7", SYNC_HTTP_PORT=str(port)),
    )
    await process.ready()
    first = await scrape(port)
    await eventually(lambda: process.process.poll() is None)
    return {"samples": first.samples, "declared": first.declared, "folder": folder}


async def test_metrics_are_ready_for_alerts(scraped: dict[str, Any]) -> None:
    samples = scraped["samples"]
    assert not [name for name in samples if name.endswith("_created")], "no _created series"
    # Every labelled series with values known in advance exists at 0 before anything happened,
    # so that rate() and increase() see the first error after a start.
    for result in ("ok", "error"):
        for name in ("s3sync_uploads_total", "s3sync_downloads_total"):
            assert series(samples, name, result=result) == 0, (name, result)
        for side in ("local", "remote"):
            for name in ("s3sync_deletes_total", "s3sync_metadata_updates_total"):
                assert series(samples, name, side=side, result=result) == 0, (name, side, result)
    assert series(samples, "s3sync_polls_total", result="error") == 0
    assert series(samples, "s3sync_polls_total", result="ok") >= 1  # the restore's listing
    for reason in SkipReason:
        assert series(samples, "s3sync_skipped_paths_total", reason=reason.value) == 0, reason
    for operation in ("watch", "io", "permission"):
        assert series(samples, "s3sync_local_errors_total", operation=operation) == 0
    for peer in ("task", "outside"):
        assert series(samples, "s3sync_http_connections_refused_total", peer=peer) == 0, peer
    assert series(samples, "s3sync_http_accepting") == 1
    assert series(samples, "s3sync_build_info", version=sidecar.__version__) == 1
    assert series(samples, "s3sync_poll_interval_seconds") == 7
    assert series(samples, "s3sync_notification_queue_failing") == 0  # no queue: never failing
    statvfs = os.statvfs(scraped["folder"])
    size = series(samples, "s3sync_volume_size_bytes")
    assert size == statvfs.f_blocks * statvfs.f_frsize
    free = series(samples, "s3sync_volume_free_bytes")
    assert 0 < free <= size
    assert abs(free - statvfs.f_bavail * statvfs.f_frsize) < 0.05 * size  # moments apart
    started = series(samples, "process_start_time_seconds")
    assert started > 1.7e9
    assert series(samples, "process_resident_memory_bytes") > 1 << 20


async def test_operations_files_name_only_exported_metrics(scraped: dict[str, Any]) -> None:
    """Alerts need series from the start (an absent series never fires); the dashboard and the
    CloudWatch agent only need the metric to be declared (S3 retries appear with the first)."""
    exported = set(scraped["samples"])
    declared = scraped["declared"]
    assert exported <= declared
    named: dict[str, tuple[set[str], set[str]]] = {
        "alerts.yml": (
            {m for rule in alert_rules() for m in METRIC_NAME.findall(rule["expr"])},
            exported,
        ),
        "alerts.test.yml": (set(METRIC_NAME.findall(ALERT_TESTS.read_text())), exported),
        "s3sync-sidecar.json": (
            {m for q in dashboard_queries() for m in METRIC_NAME.findall(q)},
            declared,
        ),
    }
    for where, (names, available) in named.items():
        assert names, where
        assert names <= available, (
            f"{where} names metrics /metrics does not have: {names - available}"
        )
    for declaration in cwagent_prometheus()["emf_processor"]["metric_declaration"]:
        for selector in declaration["metric_selectors"]:
            matched = [name for name in exported if re.search(selector, name)]
            assert matched, f"cwagent-config.json: {selector} matches no exported metric"
            for name in matched:
                for labels, _ in scraped["samples"][name]:
                    missing = (
                        set(declaration["dimensions"][0])
                        - {"ClusterName", "TaskDefinitionFamily"}
                        - set(labels)
                    )
                    assert not missing, (selector, name, missing)


def test_embedding_the_syncer_leaves_created_series_alone() -> None:
    """Only the command turns `*_created` series off (prometheus-client's switch is process-wide):
    a program that builds the sidecar's metrics in its own process keeps its own."""
    code = (
        "import prometheus_client as p\n"
        "from sidecar.metrics import Metrics\n"
        "Metrics()\n"
        "r = p.CollectorRegistry()\n"
        "p.Counter('app_events', 'events', registry=r)\n"
        "print(p.generate_latest(r).decode())\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert "app_events_created" in result.stdout


async def test_metrics_move_by_the_right_amounts(run_sidecar, sidecar_env, bucket: Bucket) -> None:
    port = int(sidecar_env["SYNC_HTTP_PORT"])
    process = run_sidecar([], sidecar_env)
    await process.answering(port, "/readyz")
    status, before_text = await get(port, "/metrics")
    assert status == 200
    before = Scrape.of(before_text).samples
    assert series(before, "s3sync_initial_restore_done") == 1
    assert series(before, "s3sync_uploads_total", result="ok") == 0

    folder = Path(sidecar_env["SYNC_DIR"])
    sizes = [10, 2000, 30000]
    for index, size in enumerate(sizes):
        (folder / f"m{index}.bin").write_bytes(b"z" * size)
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 3))
    (folder / "m0.bin").unlink()
    await eventually(lambda: in_thread(lambda: len(bucket.list_keys()) == 2))
    await in_thread(bucket.put, "remote.txt", b"12345")
    await eventually(lambda: (folder / "remote.txt").exists())

    async def counted() -> None:
        after = (await scrape(port)).samples
        assert series(after, "s3sync_uploads_total", result="ok") == 3
        assert series(after, "s3sync_uploaded_bytes_total") == sum(sizes)
        assert series(after, "s3sync_s3_requests_total", operation="PutObject", status="200") == 3
        assert series(after, "s3sync_s3_request_duration_seconds_count", operation="PutObject") == 3
        assert series(after, "s3sync_deletes_total", side="remote", result="ok") == 1
        assert series(after, "s3sync_downloads_total", result="ok") == 1
        assert series(after, "s3sync_downloaded_bytes_total") == 5
        assert series(after, "s3sync_files_tracked") == 3  # m1, m2, remote.txt
        assert series(after, "s3sync_queue_depth", direction="upload") == 0
        assert series(after, "s3sync_oldest_pending_change_age_seconds") == 0
        assert series(after, "s3sync_inotify_watches") == 1
        assert series(after, "s3sync_last_successful_poll_timestamp_seconds") > 1.7e9
        assert series(after, "s3sync_poll_duration_seconds_count") >= 2

    await eventually(counted, what="metrics after known operations")
    families = list(text_string_to_metric_families((await get(port, "/metrics"))[1]))
    for family in families:
        assert family.name.startswith(("s3sync_", "process_")), family.name
        if family.type == "counter":
            assert all(s.name.endswith("_total") for s in family.samples), family.name
    status, body = await get(port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    process.process.send_signal(signal.SIGTERM)
    assert await process.wait() == 0
