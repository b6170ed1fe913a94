"""The operator's command lines: `csvkafka`, its settings from the environment, `kubectl csvimport`."""

from __future__ import annotations

import json
import re

import pytest

from csvkafka_operator.cli import main
from csvkafka_operator.plugin import _parser, render_status
from csvkafka_operator.settings import EnvVar, Settings, SettingsError


def test_csvkafka_offers_the_workers_commands_and_the_operator(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    usage = capsys.readouterr().out
    assert all(command in usage for command in ("run", "checkpoint", "operator"))


def test_settings_come_from_the_environment() -> None:
    settings = Settings.from_env({
        "CSVKAFKA_WORKER_IMAGE": "123.dkr.example/csvkafka:2.0", "CSVKAFKA_WORKER_ENV": json.dumps({"A": "1"}),
        "CSVKAFKA_NAMESPACES": "team-*,!team-test", "CSVKAFKA_INTERVAL_SECONDS": "2.5",
        "CSVKAFKA_FARGATE_LABELS": '{"fargate": "yes"}'})
    assert settings.worker_image == "123.dkr.example/csvkafka:2.0"
    assert settings.worker_env == (EnvVar(name="A", value="1"),) and settings.fargate_labels == {"fargate": "yes"}
    assert settings.namespaces == ("team-*,!team-test",)  # one kopf pattern: order matters
    assert settings.interval_seconds == 2.5
    assert Settings.from_env({}).worker_service_account == "csvkafka-worker"


def test_worker_env_is_a_list_of_env_vars_whose_secrets_stay_references() -> None:
    entries = [{"name": "AWS_REGION", "value": "eu-west-1"},
               {"name": "API_TOKEN", "valueFrom": {"secretKeyRef": {"name": "importer", "key": "token"}}},
               {"name": "LOG_LEVEL",
                "valueFrom": {"configMapKeyRef": {"name": "tuning", "key": "log", "optional": True}}}]
    settings = Settings.from_env({"CSVKAFKA_WORKER_ENV": json.dumps(entries)})
    assert [var.to_api() for var in settings.worker_env] == entries


def test_the_former_map_form_of_worker_env_still_means_plain_values_in_name_order() -> None:
    settings = Settings.from_env({"CSVKAFKA_WORKER_ENV": json.dumps({"B": "2", "A": "1"})})
    assert [var.to_api() for var in settings.worker_env] == [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]


@pytest.mark.parametrize(("env", "message"), [
    ({"CSVKAFKA_WORKER_ENV": "A=1"}, "CSVKAFKA_WORKER_ENV must be a JSON list of EnvVars"),
    ({"CSVKAFKA_WORKER_ENV": '[{"name": "TOKEN"}]'},
     "CSVKAFKA_WORKER_ENV (worker_env) [0]: TOKEN: give either value or valueFrom"),
    ({"CSVKAFKA_WORKER_ENV": '[{"name": "A", "value": "1"}, '
                             '{"name": "T", "valueFrom": {"secretKeyRef": {"name": "s"}}}]'},
     "CSVKAFKA_WORKER_ENV (worker_env) [1].valueFrom.secretKeyRef.key: Field required"),
    ({"CSVKAFKA_WORKER_ENV": '[{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]'},
     "CSVKAFKA_WORKER_ENV (worker_env) [0].valueFrom.fieldRef: Extra inputs are not permitted"),
    ({"CSVKAFKA_JOB_TTL_SECONDS": "soon"}, "CSVKAFKA_JOB_TTL_SECONDS (job_ttl_seconds)"),
    ({"CSVKAFKA_WORKER_METRICS_PORT": "70000"}, "CSVKAFKA_WORKER_METRICS_PORT (worker_metrics_port)"),
])
def test_a_bad_setting_is_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


def test_the_plugins_flags_go_before_or_after_the_command_as_with_kubectl() -> None:
    before = _parser().parse_args(["-n", "data", "--context", "prod", "restart", "people", "--from-row", "7"])
    after = _parser().parse_args(["restart", "people", "--from-row", "7", "-n", "data", "--context", "prod"])
    for args in (before, after):
        assert (args.namespace, args.context, args.name, args.from_row) == ("data", "prod", "people", 7)


def test_the_plugins_status_shows_every_shard_and_condition() -> None:
    body = {"metadata": {"name": "clicks", "namespace": "data", "uid": "u"},
            "spec": {"source": {"uri": "s3://logs/clicks.csv"},
                     "sink": {"bootstrapServers": "b:9092", "topic": "clicks"},
                     "checkpoint": {"table": "checkpoints"}, "parallelism": 2, "capacity": "spot"},
            "status": {"phase": "Running", "recordsRead": 1500, "progress": "37.5%", "rowsPerSecond": 900,
                       "eta": "2m", "shards": [
                           {"index": 0, "jobId": "j#0/2", "state": "running", "recordsRead": 1000, "progress": "50.0%"},
                           {"index": 1, "jobId": "j#1/2", "state": "interrupted", "recordsRead": 500,
                            "message": "stopped by SIGTERM"}],
                       "conditions": [{"type": "Progressing", "status": "True", "reason": "Running",
                                       "message": "2 of 2 worker pods running", "lastTransitionTime": "t"}]}}
    report = render_status(body).splitlines()
    assert report[0] == "csvimport/clicks in namespace data: Running"
    assert "capacity spot, 2 shards" in report[1]
    assert "rows read 1,500" in report[3] and "ETA 2m" in report[3]
    shard_rows = [line.split() for line in report if line[:1].isdigit()]
    assert [(r[0], r[1], r[2]) for r in shard_rows] == [("0", "running", "1,000"), ("1", "interrupted", "500")]
    assert report[-1].split()[:3] == ["Progressing", "True", "Running"]


def test_the_operator_commands_log_formats_are_kopfs() -> None:
    import kopf

    from csvkafka_operator.command import LOG_FORMATS

    assert set(LOG_FORMATS) == {f.name.lower() for f in kopf.LogFormat}
