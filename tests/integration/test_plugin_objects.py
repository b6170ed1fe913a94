"""`kubectl csvimport objects` against the stack's DynamoDB: the plan the workers store, read page by page,
and every object's checkpoint items, read in batches."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from csvkafka_operator.plugin import _parser, show_objects
from csvkafka_worker.checkpoint import Checkpoint, State, object_job_id, to_item
from csvkafka_worker.plan import ObjectEntry
from csvkafka_worker.planstore import PlanStore
from csvkafka_worker.retry import Backoff, Retrier, Service

pytestmark = pytest.mark.integration

JOB = "exports/2026-11/->clicks"
# More than one page of the plan.
ENTRIES = [ObjectEntry("exports", f"2026-11/part-{n:04}.csv", 1000 + n, f"etag{n}", datetime(2026, 11, 1, tzinfo=UTC))
           for n in range(1500)]


class OneImport:
    def __init__(self, table: str) -> None:
        self.body = {"metadata": {"name": "clicks", "namespace": "data", "uid": "u"},
                     "spec": {"source": {"uri": "s3://exports/2026-11/"},
                              "sink": {"bootstrapServers": "b:9092", "topic": "clicks"},
                              "checkpoint": {"table": table, "jobId": JOB}, "parallelism": 3}}

    def get_import(self, namespace: str, name: str) -> dict[str, Any]:
        return self.body


def objects_report(table: str, dynamodb: Any, capsys: pytest.CaptureFixture[str]) -> list[str]:
    args = _parser().parse_args(["objects", "clicks"])
    assert show_objects(OneImport(table), "data", args, dynamodb) == 0
    return capsys.readouterr().out.splitlines()


@pytest.fixture
def planned_table(checkpoint_table: str, dynamodb: Any) -> Iterator[str]:
    plans = PlanStore(dynamodb, checkpoint_table, JOB, Retrier(Service.DYNAMODB, Backoff(20)))
    plans.ensure("initial", lambda: iter(ENTRIES), wait_seconds=30)
    yield checkpoint_table


def test_every_planned_object_is_listed_with_its_checkpoint(planned_table: str, dynamodb: Any,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    done, failed = ENTRIES[7], ENTRIES[1200]
    for cp in (Checkpoint(job_id=object_job_id(JOB, done.bucket, done.key), last_line=40, total_sent=39,
                          rows_skipped=1, timestamp=1, state=State.COMPLETED),
               Checkpoint(job_id=object_job_id(JOB, failed.bucket, failed.key), timestamp=1, state=State.FAILED,
                          reason="BadInput", message="row 3: quoted field not closed")):
        dynamodb.put_item(TableName=planned_table, Item=to_item(cp))
    report = objects_report(planned_table, dynamodb, capsys)
    assert report[0] == "csvimport/clicks: 1,500 objects in the plan: 1 completed, 1 failed, 1,498 pending"
    rows = {line.split()[0]: line.split()[1:] for line in report[3:]}
    assert len(rows) == 1500 and list(rows) == [entry.uri for entry in ENTRIES]
    assert rows[done.uri] == ["completed", "39", "1", "1,007", "100%"]
    assert rows[failed.uri] == ["failed", "0", "0", "2,200", "-", "BadInput:", "row", "3:", "quoted", "field", "not",
                                "closed"]


def test_before_the_plan_is_complete_there_are_no_objects_to_show(checkpoint_table: str, dynamodb: Any,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    [line] = objects_report(checkpoint_table, dynamodb, capsys)
    assert line.startswith("csvimport/clicks: no objects planned yet")
