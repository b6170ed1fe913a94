"""The chart's PrometheusRule and Grafana dashboard, rendered by `helm template` and read by promtool.

`promtool test rules` evaluates each alert against sample series, one that fires and others that must
not; the dashboard's queries name only metrics the worker serves, and each one evaluates to the value
its panel promises on a shard's sample series.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import prometheus_client
import pytest
import yaml

from csvkafka_worker.metrics import Metrics
from tests.unit.chart import CHART, one, render, run, tool

WATCHED = "imports"
VALUES: dict[str, Any] = {
    "watchNamespaces": [WATCHED, "team-b"],
    "metrics": {"prometheusRule": {"enabled": True}, "grafanaDashboard": {"enabled": True}},
}
# One shard of import imports/orders as Prometheus sees it through the chart's ServiceMonitor.
SHARD = {"namespace": WATCHED, "csvkafka_io_import": "orders", "job": "orders#0/2"}
SCRAPED = {**SHARD, "pod": "orders-1a2b-0-x7k2p", "instance": "10.0.3.7:9102", "service": "csvkafka-worker-metrics"}
OF_SHARD = "shard orders#0/2 of import imports/orders"
JOB = {"namespace": WATCHED, "job_name": "orders-1a2b", "job": "kube-state-metrics"}


def series(name: str, labels: dict[str, str]) -> str:
    return name + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"


@pytest.fixture(scope="module")
def promtool() -> str:
    return tool("promtool")


def rules(values: dict[str, Any]) -> dict[str, Any]:
    return {"groups": one(render(values), "PrometheusRule")["spec"]["groups"]}


def promtool_test(promtool: str, where: Path, rule_file: dict[str, Any], tests: list[dict[str, Any]]) -> str:
    (where / "rules.yaml").write_text(yaml.safe_dump(rule_file))
    (where / "tests.yaml").write_text(yaml.safe_dump({
        "rule_files": ["rules.yaml"], "evaluation_interval": "1m", "fuzzy_compare": True, "tests": tests}))
    done = run(promtool, "test", "rules", str(where / "tests.yaml"))
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_rules_pass_promtool_check(promtool: str, tmp_path: Path) -> None:
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules(VALUES)))
    checked = run(promtool, "check", "rules", "--lint=all", "--lint-fatal", str(tmp_path / "rules.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 5 rules found" in checked.stdout


def test_nothing_for_prometheus_or_grafana_unless_asked() -> None:
    kinds = {m["kind"] for m in render({})}
    assert not kinds & {"PrometheusRule", "ServiceMonitor", "ConfigMap"}


@dataclass(frozen=True)
class Case:
    """Series (name → values in promtool's notation) evaluated at `at`; `fires`: the alert's labels
    (besides severity) and summary, or None where it must stay silent."""

    alert: str
    series: dict[str, str]
    at: str
    fires: tuple[dict[str, str], str] | None = None
    labels: dict[str, str] = field(default_factory=lambda: dict(SCRAPED))


CASES = {
    "stalled: nothing acknowledged for 15m, then 5m more": Case(
        "CsvKafkaImportStalled", {"csvkafka_rows_sent_total": "0+100x10 1000x30"}, "31m",
        (SHARD, f"{OF_SHARD} acknowledged no row for 15m")),
    "stalled: not yet for 5m": Case("CsvKafkaImportStalled", {"csvkafka_rows_sent_total": "0+100x10 1000x30"}, "27m"),
    "stalled: rows keep coming": Case("CsvKafkaImportStalled", {"csvkafka_rows_sent_total": "0+100x40"}, "31m"),
    "failed: the import's Job failed": Case(
        "CsvKafkaImportFailed",
        {"kube_job_failed": "0x4 1x10", "kube_job_owner": "1x14"}, "10m",
        ({"namespace": WATCHED, "job_name": "orders-1a2b", "owner_name": "orders"},
         "Import imports/orders failed (Job orders-1a2b)"),
        {**JOB, "condition": "true", "owner_kind": "CsvKafkaImport", "owner_name": "orders",
         "owner_is_controller": "true"}),
    "failed: the Job runs": Case(
        "CsvKafkaImportFailed", {"kube_job_failed": "0x14", "kube_job_owner": "1x14"}, "10m",
        labels={**JOB, "condition": "true", "owner_kind": "CsvKafkaImport", "owner_name": "orders"}),
    "failed: another owner's Job": Case(
        "CsvKafkaImportFailed", {"kube_job_failed": "1x14", "kube_job_owner": "1x14"}, "10m",
        labels={**JOB, "condition": "true", "owner_kind": "CronJob", "owner_name": "orders"}),
    "failed: a namespace this release does not watch": Case(
        "CsvKafkaImportFailed", {"kube_job_failed": "1x14", "kube_job_owner": "1x14"}, "10m",
        labels={**JOB, "namespace": "elsewhere", "condition": "true", "owner_kind": "CsvKafkaImport",
                "owner_name": "orders"}),
    "throttled: 20 in 10m, for 10m": Case(
        "CsvKafkaImportThrottled", {"csvkafka_throttled_total": "0+2x40"}, "30m",
        ({**SHARD, "service": "dynamodb"}, f"{OF_SHARD}: 20 calls to dynamodb throttled in 10m"),
        {**SCRAPED, "service": "dynamodb"}),
    "throttled: 5 in 10m": Case("CsvKafkaImportThrottled", {"csvkafka_throttled_total": "0+0.5x40"}, "30m",
                                labels={**SCRAPED, "service": "dynamodb"}),
    "checkpoint: 25 minutes old": Case(
        "CsvKafkaImportCheckpointTooOld", {"csvkafka_checkpoint_age_seconds": "0+60x40"}, "25m",
        (SHARD, f"{OF_SHARD} last checkpointed 25m 0s ago")),
    "checkpoint: taken every 30s": Case(
        "CsvKafkaImportCheckpointTooOld", {"csvkafka_checkpoint_age_seconds": "30x40"}, "25m"),
    "dead letters: 3 new rows": Case(
        "CsvKafkaImportDeadLettersGrowing", {"csvkafka_rows_bad_total": "0x10 3x20"}, "15m",
        (SHARD, f"{OF_SHARD} dead-lettered or skipped 3 rows in 15m")),
    "dead letters: as many as before": Case(
        "CsvKafkaImportDeadLettersGrowing", {"csvkafka_rows_bad_total": "5x30"}, "15m"),
    "dead letters: a namespace this release does not watch": Case(
        "CsvKafkaImportDeadLettersGrowing", {"csvkafka_rows_bad_total": "0x10 3x20"}, "15m",
        labels={**SCRAPED, "namespace": "elsewhere"}),
}


def alert_test(case: Case, rule: dict[str, Any], extra_labels: dict[str, str]) -> dict[str, Any]:
    expected = []
    if case.fires:
        labels, summary = case.fires
        # The description names the alert's labels; the rest of it is prose.
        description = re.sub(r"\{\{ \$labels\.(\w+) \}\}", lambda m: labels[m[1]], rule["annotations"]["description"])
        expected.append({"exp_labels": {**labels, **extra_labels},
                         "exp_annotations": {"summary": summary, "description": description}})
    return {
        "interval": "1m",
        "input_series": [{"series": series(name, case.labels), "values": values}
                         for name, values in case.series.items()],
        "alert_rule_test": [{"eval_time": case.at, "alertname": case.alert, "exp_alerts": expected}],
    }


@pytest.mark.parametrize("name", CASES)
def test_alert_fires_only_when_it_should(promtool: str, tmp_path: Path, name: str) -> None:
    case = CASES[name]
    rule_file = rules(VALUES)
    [rule] = [r for r in rule_file["groups"][0]["rules"] if r["alert"] == case.alert]
    promtool_test(promtool, tmp_path, rule_file, [alert_test(case, rule, {"severity": rule["labels"]["severity"]})])


def test_thresholds_and_labels_come_from_values(promtool: str, tmp_path: Path) -> None:
    custom = {**VALUES, "metrics": {"prometheusRule": {
        "enabled": True, "alertLabels": {"team": "data"},
        "checkpointAge": {"seconds": 60, "for": "0m", "severity": "page"}}}}
    rule_file = rules(custom)
    [rule] = [r for r in rule_file["groups"][0]["rules"] if r["alert"] == "CsvKafkaImportCheckpointTooOld"]
    case = Case(rule["alert"], {"csvkafka_checkpoint_age_seconds": "0+60x10"}, "2m",
                (SHARD, f"{OF_SHARD} last checkpointed 2m 0s ago"))
    silent = Case(rule["alert"], {"csvkafka_checkpoint_age_seconds": "0+60x10"}, "1m")
    promtool_test(promtool, tmp_path, rule_file, [alert_test(c, rule, {"severity": "page", "team": "data"})
                                                  for c in (case, silent)])


# -- the dashboard --------------------------------------------------------------------------------

DASHBOARD_FILE = CHART / "dashboards" / "csvkafka.json"
DASHBOARD = json.loads(DASHBOARD_FILE.read_text())
GRAFANA_VARIABLES = {"$namespace": ".*", "$import": ".*", "$__rate_interval": "5m"}


def panel_queries() -> dict[str, list[str]]:
    return {p["title"]: [t["expr"] for t in p["targets"]] for p in DASHBOARD["panels"]}


def as_promql(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


def served_metric_names(monkeypatch: pytest.MonkeyPatch) -> set[str]:
    """Every series name the worker serves (counters with their _total), from its own registry."""
    monkeypatch.setattr(prometheus_client, "start_http_server", lambda *_, **__: None)
    metrics = Metrics("job")
    metrics.serve(9102)
    return {f.name + ("_total" if f.type == "counter" else "") for f in metrics.registry.collect()}


def test_the_chart_ships_the_dashboard_file_to_the_grafana_sidecar() -> None:
    values = {**VALUES, "metrics": {"grafanaDashboard": {
        "enabled": True, "namespace": "monitoring", "annotations": {"grafana_folder": "csvkafka"}}}}
    config_map = one(render(values), "ConfigMap")
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "csvkafka"}
    assert json.loads(config_map["data"]["csvkafka.json"]) == DASHBOARD


def test_dashboard_queries_name_only_metrics_the_worker_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    queries = [q for qs in panel_queries().values() for q in qs]
    queries += [v["query"]["query"] for v in DASHBOARD["templating"]["list"] if v["type"] == "query"]
    # csvkafka_io_import is the label the ServiceMonitor copies from the pods, not a metric.
    named = {m for q in queries for m in re.findall(r"\bcsvkafka_\w+", q)} - {"csvkafka_io_import"}
    assert named <= served_metric_names(monkeypatch), named - served_metric_names(monkeypatch)
    # Rows, progress, bad rows and the lag to the checkpoint all have a panel.
    assert {"csvkafka_rows_sent_total", "csvkafka_rows_bad_total", "csvkafka_checkpoint_age_seconds"} <= named


def test_dashboard_panels_group_by_import_and_shard() -> None:
    for title, queries in panel_queries().items():
        for query in queries:
            assert "by (namespace, csvkafka_io_import, job" in query, title
            assert 'namespace=~"$namespace", csvkafka_io_import=~"$import"' in query, title


# What each panel's queries give at 10m for one shard whose worker, every minute, read 120 rows
# (6,000 bytes), had 110 acknowledged, 6 dead-lettered, 3 DynamoDB calls throttled and 4 retried.
SHARD_AT_10M = {
    "csvkafka_rows_read_total": "0+120x20", "csvkafka_rows_sent_total": "0+110x20",
    "csvkafka_rows_bad_total": "0+6x20", "csvkafka_bytes_read_total": "0+6000x20",
    "csvkafka_checkpoint_age_seconds": "12x20", "csvkafka_producer_queue_depth": "7x20",
}
PER_SERVICE_AT_10M = {"csvkafka_throttled_total": "0+3x20", "csvkafka_retries_total": "0+4x20"}
PANEL_VALUES = {
    "Rows per second": [110 / 60, 2.0],
    "Progress: rows sent": [1100.0],
    "Source read per second": [100.0],
    "Progress: source read": [60000.0],
    "Bad rows": [30.0],
    "Lag to checkpoint": [12.0],
    "Rows in flight": [1200.0 - 1100 - 60, 7.0],
    "Retried and throttled calls": [0.05, 4 / 60],
}


def test_dashboard_queries_evaluate_to_what_their_panels_say(promtool: str, tmp_path: Path) -> None:
    assert set(PANEL_VALUES) == set(panel_queries())
    inputs = [{"series": series(name, SCRAPED), "values": values} for name, values in SHARD_AT_10M.items()]
    inputs += [{"series": series(name, {**SCRAPED, "service": "dynamodb"}), "values": values}
               for name, values in PER_SERVICE_AT_10M.items()]
    expr_tests = []
    for title, queries in panel_queries().items():
        for query, value in zip(queries, PANEL_VALUES[title], strict=True):
            labels = {**SHARD, "service": "dynamodb"} if "by (namespace, csvkafka_io_import, job, service)" in query \
                else SHARD
            expr_tests.append({"expr": as_promql(query), "eval_time": "10m",
                               "exp_samples": [{"labels": series("", labels), "value": value}]})
    promtool_test(promtool, tmp_path, {"groups": []},
                  [{"interval": "1m", "input_series": inputs, "promql_expr_test": expr_tests}])
