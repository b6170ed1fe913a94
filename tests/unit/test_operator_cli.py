"""The operator's command lines: `csvkafka`, its settings from the environment, `kubectl csvimport`."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import ClientError

from csvkafka_operator import objects
from csvkafka_operator.cli import main
from csvkafka_operator.plugin import _parser, render_objects, render_status, show_objects
from csvkafka_operator.settings import EnvVar, Settings, SettingsError
from csvkafka_worker.checkpoint import Checkpoint, State, to_item
from csvkafka_worker.plan import ObjectEntry


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


# -- kubectl csvimport objects ---------------------------------------------------------------------

JOB = "exports/2026-11/->clicks"
WHEN = datetime(2026, 11, 1, tzinfo=UTC)
MIB = 1024 * 1024


def entry(key: str, size: int = 1000) -> ObjectEntry:
    return ObjectEntry("exports", key, size, "etag-" + key, WHEN)


def item(job_id: str, **fields: Any) -> Checkpoint:
    return Checkpoint(job_id=job_id, timestamp=1, **fields)


def test_an_object_the_plan_splits_is_read_from_all_its_pieces_and_a_compressed_one_never_is() -> None:
    big, packed = entry("2026-11/big.csv", 400 * MIB), entry("2026-11/packed.csv.gz", 400 * MIB)
    planned = objects.planned(JOB, [big, packed], 4)
    base = f"{JOB}@exports/2026-11"
    assert [p.item_ids for p in planned] == [tuple(f"{base}/big.csv#{j}/2" for j in range(2)),
                                             (f"{base}/packed.csv.gz",)]
    assert [p.item_ids for p in objects.planned(JOB, [big, packed], 1)] == [(f"{base}/big.csv",),
                                                                           (f"{base}/packed.csv.gz",)]


def test_each_objects_row_adds_up_its_pieces() -> None:
    planned = [objects.PlannedObject(entry(key), ids) for key, ids in [
        ("done.csv", ("d",)), ("split.csv", ("s#0/2", "s#1/2")), ("half.csv", ("h#0/2", "h#1/2")),
        ("bad.csv", ("b",)), ("stopped.csv", ("i",)), ("new.csv", ("n",))]]
    found = objects.rows(planned, {cp.job_id: cp for cp in [
        item("d", total_sent=10, state=State.COMPLETED),
        item("s#0/2", total_sent=5, rows_skipped=1, byte_offset=600, range_start=100, bytes_total=500,
             state=State.COMPLETED),
        item("s#1/2", total_sent=2, byte_offset=300, range_start=0, bytes_total=500, state=State.RUNNING),
        item("h#0/2", total_sent=3, state=State.COMPLETED),
        item("b", state=State.FAILED, reason="ExpectedHeaderMismatch", message="header a,b is not a,c"),
        item("i", total_sent=4, byte_offset=50, range_start=0, bytes_total=1000, state=State.INTERRUPTED)]})
    assert [(r.state, r.rows_sent, r.rows_bad, r.progress, r.reason) for r in found] == [
        ("completed", 10, 0, "100%", ""),
        ("running", 7, 1, "80.0%", ""),
        ("partial", 3, 0, None, ""),
        ("failed", 0, 0, None, "ExpectedHeaderMismatch: header a,b is not a,c"),
        ("interrupted", 4, 0, "5.0%", ""),
        ("pending", 0, 0, None, "")]


def test_the_objects_table_has_a_line_per_object_and_a_count_per_state() -> None:
    rows = [objects.ObjectRow("s3://exports/a.csv", "completed", 1200, 0, 50_000, "100%", ""),
            objects.ObjectRow("s3://exports/b.csv", "failed", 0, 0, 10, None, "BadInput: row 3 is bad"),
            objects.ObjectRow("s3://exports/c.csv", "completed", 7, 2, 900, "100%", "")]
    report = render_objects("clicks", rows).splitlines()
    assert report[0] == "csvimport/clicks: 3 objects in the plan: 2 completed, 1 failed"
    assert report[2].split() == ["OBJECT", "STATE", "SENT", "BAD", "BYTES", "PROGRESS", "REASON"]
    assert report[3].split() == ["s3://exports/a.csv", "completed", "1,200", "0", "50,000", "100%"]
    assert report[4].split() == ["s3://exports/b.csv", "failed", "0", "0", "10", "-", "BadInput:", "row", "3", "is",
                                 "bad"]
    assert len(report) == 6
    assert "no objects planned yet" in render_objects("clicks", [])


class FakeKube:
    def __init__(self, body: dict[str, Any] | None) -> None:
        self.body = body
        self.patches: list[dict[str, Any]] = []

    def get_import(self, namespace: str, name: str) -> dict[str, Any] | None:
        return self.body

    def patch_import(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any] | None:
        self.patches.append(patch)
        return self.body


class FakeDynamoDB:
    def __init__(self, items: list[Checkpoint], error: Exception | None = None) -> None:
        self.items = {cp.job_id: to_item(cp) for cp in items}
        self.error = error

    def batch_get_item(self, RequestItems: dict[str, Any]) -> dict[str, Any]:
        if self.error is not None:
            raise self.error
        [(table, request)] = RequestItems.items()
        found = [self.items[k["job_id"]["S"]] for k in request["Keys"] if k["job_id"]["S"] in self.items]
        return {"Responses": {table: found}}


def import_of(uri: str) -> dict[str, Any]:
    return {"metadata": {"name": "clicks", "namespace": "data", "uid": "u"},
            "spec": {"source": {"uri": uri}, "sink": {"bootstrapServers": "b:9092", "topic": "clicks"},
                     "checkpoint": {"table": "checkpoints", "jobId": JOB}, "parallelism": 2}}


def run_objects(body: dict[str, Any] | None, dynamodb: FakeDynamoDB, plan: list[ObjectEntry]) -> int:
    args = _parser().parse_args(["objects", "clicks", "-n", "data"])
    return show_objects(FakeKube(body), "data", args, dynamodb, lambda client, resource: plan)


def test_objects_reads_the_plan_and_every_objects_items(capsys: pytest.CaptureFixture[str]) -> None:
    plan = [entry("2026-11/a.csv"), entry("2026-11/b.csv")]
    dynamodb = FakeDynamoDB([item(f"{JOB}@exports/2026-11/a.csv", total_sent=9, state=State.COMPLETED)])
    assert run_objects(import_of("s3://exports/2026-11/"), dynamodb, plan) == 0
    report = capsys.readouterr().out.splitlines()
    assert report[0] == "csvimport/clicks: 2 objects in the plan: 1 completed, 1 pending"
    assert [line.split()[:3] for line in report[3:]] == [["s3://exports/2026-11/a.csv", "completed", "9"],
                                                         ["s3://exports/2026-11/b.csv", "pending", "0"]]


def test_objects_of_a_single_object_import_points_to_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_objects(import_of("s3://exports/one.csv"), FakeDynamoDB([]), []) == 0
    assert "imports one object, s3://exports/one.csv; kubectl csvimport status clicks" in capsys.readouterr().out


def test_objects_without_access_to_the_table_says_which_permissions(capsys: pytest.CaptureFixture[str]) -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not authorized"}}, "BatchGetItem")
    assert run_objects(import_of("s3://exports/2026-11/"), FakeDynamoDB([], denied), [entry("a.csv")]) == 1
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("kubectl csvimport: cannot read DynamoDB table 'checkpoints' with your AWS credentials: ")
    assert "AccessDeniedException" in line and line.endswith("need dynamodb:GetItem and dynamodb:BatchGetItem on it")


def run_command(body: dict[str, Any], *argv: str) -> tuple[int, list[dict[str, Any]]]:
    kube = FakeKube(body)
    args = _parser().parse_args(list(argv))
    return args.action(kube, "data", args), kube.patches


def test_a_reset_of_many_objects_reruns_all_of_them_and_of_one_object_deletes_its_checkpoint(
        capsys: pytest.CaptureFixture[str]) -> None:
    code, [patch] = run_command(import_of("s3://exports/2026-11/*.csv"), "reset", "clicks")
    assert code == 0 and patch["spec"]["rerun"]["mode"] == "all" and patch["spec"]["rerun"]["id"]
    assert "imports every object from its first row (rerun id " in capsys.readouterr().out
    code, [patch] = run_command(import_of("s3://exports/one.csv"), "reset", "clicks")
    assert code == 0 and patch["spec"]["restart"]["fromRow"] == 1 and "rerun" not in patch["spec"]


def test_a_rerun_names_its_mode_and_is_refused_for_one_object(capsys: pytest.CaptureFixture[str]) -> None:
    code, [patch] = run_command(import_of("s3://exports/2026-11/"), "rerun", "clicks", "--mode", "changed")
    assert code == 0 and patch["spec"]["rerun"]["mode"] == "changed"
    assert "and those whose ETag changed" in capsys.readouterr().out
    assert run_command(import_of("s3://exports/2026-11/"), "rerun", "clicks")[1][0]["spec"]["rerun"]["mode"] == "new"
    code, patches = run_command(import_of("s3://exports/one.csv"), "rerun", "clicks")
    assert (code, patches) == (1, [])
    assert "imports one object; kubectl csvimport restart continues it" in capsys.readouterr().err


def test_the_plugins_status_of_many_objects_shows_their_counts_the_slowest_shard_and_the_failed_ones() -> None:
    body = {"metadata": {"name": "clicks", "namespace": "data", "uid": "u"},
            "spec": {"source": {"uris": ["s3://logs/a.csv", "s3://logs/b.csv"]},
                     "sink": {"bootstrapServers": "b:9092", "topic": "clicks"},
                     "checkpoint": {"table": "checkpoints"}, "parallelism": 2, "onObjectError": "skip"},
            "status": {"phase": "Running", "objects": {"total": 2, "done": 0, "failed": 1, "running": 1},
                       "objectsSummary": "0/2, 1 failed", "slowestShard": {"index": 1, "progress": "12.0%"},
                       "failedObjects": [{"uri": "s3://logs/b.csv", "reason": "BadInput", "message": "row 3"}]}}
    report = render_status(body).splitlines()
    assert report[1] == ("  s3://logs/a.csv and 1 more objects of source.uris -> topic clicks (at-least-once, "
                         "capacity on-demand, 2 shards)")
    assert ("  objects done 0/2, 1 failed; slowest shard 1 at 12.0%; kubectl csvimport objects clicks lists them"
            in report)
    assert report[-2].split() == ["FAILED", "OBJECT", "REASON", "MESSAGE"]
    assert report[-1].split() == ["s3://logs/b.csv", "BadInput", "row", "3"]
