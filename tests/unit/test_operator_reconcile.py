"""The Reconciler's decisions, against an in-memory API server and checkpoint table."""

from __future__ import annotations

import copy
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

from csvkafka_operator.reconcile import Reconciler
from csvkafka_operator.settings import Settings
from csvkafka_operator.status import Event
from csvkafka_worker.checkpoint import Checkpoint, State

NS, NAME, UID = "data", "people", "0d9c6a51"
START = datetime(2026, 1, 16, 10, 0, tzinfo=UTC)
JOB_ID = "exports/people.csv->people"


class FakeKube:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.body: dict[str, Any] = {"apiVersion": "csvkafka.io/v1alpha1", "kind": "CsvKafkaImport",
                                     "metadata": {"name": NAME, "namespace": NS, "uid": UID, "generation": 1},
                                     "spec": spec}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.secrets: dict[str, frozenset[str]] = {}
        self.pods: list[dict[str, Any]] = []
        self.deleted_pods: list[str] = []
        self.reads: list[str] = []

    def get_import(self, namespace: str, name: str) -> dict[str, Any] | None:
        self.reads.append(name)
        return copy.deepcopy(self.body) if name == NAME else None

    def patch_import_status(self, namespace: str, name: str, patch: dict[str, Any]) -> None:
        status = self.body.setdefault("status", {})
        status.update(patch)
        for key in [k for k, v in status.items() if v is None]:
            del status[key]

    def list_jobs(self, namespace: str, import_name: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(job) for job in self.jobs.values()]

    def list_managed_jobs(self, namespace: str) -> list[dict[str, Any]]:
        return [copy.deepcopy(job) for job in self.jobs.values()]

    def create_job(self, job: dict[str, Any]) -> dict[str, Any]:
        name = job["metadata"]["name"]
        self.created.append(name)
        self.jobs.setdefault(name, {**job, "status": {}})
        return copy.deepcopy(self.jobs[name])

    def patch_job(self, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.jobs[name]["spec"].update(patch["spec"])
        return copy.deepcopy(self.jobs[name])

    def delete_job(self, namespace: str, name: str) -> None:
        # Foreground deletion: the Job stays until finish_deletions(), as while its pods stop.
        self.deleted.append(name)

    def finish_deletions(self) -> None:
        for name in self.deleted:
            self.jobs.pop(name, None)

    def list_pods(self, namespace: str, job: str) -> list[dict[str, Any]]:
        return copy.deepcopy(self.pods)

    def delete_pod(self, namespace: str, name: str) -> None:
        self.deleted_pods.append(name)
        for pod in self.pods:
            if pod["metadata"]["name"] == name:
                pod["metadata"]["deletionTimestamp"] = "2026-01-16T10:00:00Z"

    def service_account_exists(self, namespace: str, name: str) -> bool:
        return name == "csvkafka-worker"

    def secret_keys(self, namespace: str, name: str) -> frozenset[str] | None:
        return self.secrets.get(name)

    def complete(self, name: str) -> None:
        self.jobs[name]["status"] = {"startTime": "2026-01-16T10:00:00Z", "completionTime": "2026-01-16T10:01:00Z",
                                     "conditions": [{"type": "Complete", "status": "True"}]}


class FakeCheckpoints:
    def __init__(self) -> None:
        self.items: dict[str, Checkpoint] = {}
        self.raw_items: dict[str, dict[str, Any]] = {}
        self.writes: list[tuple[str, ...]] = []

    def raw(self, table: str, job_ids: list[str]) -> dict[str, dict[str, Any]]:
        return {i: self.raw_items[i] for i in job_ids if i in self.raw_items}

    def read(self, table: str, job_ids: list[str]) -> dict[str, Checkpoint]:
        return {i: self.items[i] for i in job_ids if i in self.items}

    def delete(self, table: str, job_ids: list[str]) -> None:
        self.writes.append(("delete", *job_ids))
        for job_id in job_ids:
            self.items.pop(job_id, None)

    def start_at_row(self, table: str, job_id: str, row: int, why: str) -> None:
        self.writes.append(("start_at_row", job_id, str(row)))
        self.items[job_id] = Checkpoint(job_id=job_id, last_line=row - 1, state=State.INTERRUPTED)


def setup(clock: list[datetime] | None = None, settings: Settings | None = None,
          **spec: Any) -> tuple[FakeKube, FakeCheckpoints, Reconciler, list[Event]]:
    kube = FakeKube({"source": {"uri": "s3://exports/people.csv"}, "sink": {"bootstrapServers": "b:9092",
                                                                            "topic": "people"},
                     "checkpoint": {"table": "checkpoints"}, **spec})
    checkpoints, events = FakeCheckpoints(), []
    reconciler = Reconciler(kube, checkpoints, settings or Settings(worker_image="csvkafka:test"),
                            emit=lambda body, event: events.append(event),
                            clock=lambda: (clock or [START])[0])
    return kube, checkpoints, reconciler, events


def other_job(name: str, parallelism: int = 1) -> dict[str, Any]:
    """A running Job of another import in the namespace."""
    return {"metadata": {"name": name, "namespace": NS, "ownerReferences": [
        {"apiVersion": "csvkafka.io/v1alpha1", "kind": "CsvKafkaImport", "name": "other", "uid": "other-uid"}]},
        "spec": {"parallelism": parallelism}, "status": {}}


def test_an_import_over_the_pod_cap_is_queued_and_a_finishing_job_starts_it() -> None:
    kube, _, reconciler, events = setup(settings=Settings(worker_image="csvkafka:test",
                                                          max_worker_pods_per_namespace=2))
    kube.jobs = {"other-a": other_job("other-a"), "other-b": other_job("other-b")}
    reconciler.reconcile(NS, NAME)
    assert kube.created == []
    status = kube.body["status"]
    [progressing] = [c for c in status["conditions"] if c["type"] == "Progressing"]
    assert status["phase"] == "Pending" and progressing["reason"] == "Queued"
    assert "cap of 2 per namespace (CSVKAFKA_MAX_PODS_PER_NAMESPACE" in progressing["message"]
    assert [e.reason for e in events] == ["Queued"]

    # Passes while it waits change nothing.
    reconciler.reconcile(NS, NAME)
    assert kube.created == [] and [e.reason for e in events] == ["Queued"]
    # A Job event that frees no pod starts nothing.
    reconciler.job_event(kube.jobs["other-a"], deleted=False)
    assert kube.created == []

    kube.jobs["other-a"]["status"] = {"conditions": [{"type": "Complete", "status": "True"}]}
    reconciler.job_event(kube.jobs["other-a"], deleted=False)
    [job] = kube.created
    assert kube.body["status"]["jobName"] == job
    assert [c["reason"] for c in kube.body["status"]["conditions"] if c["type"] == "Progressing"] == ["Starting"]


def test_a_queued_import_that_is_gone_makes_room_for_the_next() -> None:
    kube, _, reconciler, _ = setup(settings=Settings(worker_image="csvkafka:test", max_worker_pods_per_namespace=1))
    kube.jobs = {"other-a": other_job("other-a")}
    reconciler.cap.count(NS, kube.jobs.values())
    assert reconciler.cap.admit(NS, "deleted-meanwhile", 1) is not None
    reconciler.reconcile(NS, NAME)
    assert kube.created == []
    kube.jobs["other-a"]["status"] = {"conditions": [{"type": "Failed", "status": "True"}]}
    reconciler.job_event(kube.jobs["other-a"], deleted=False)
    assert len(kube.created) == 1
    assert not reconciler.cap.waiting(NS)


def test_without_a_cap_every_import_starts_at_once() -> None:
    kube, _, reconciler, _ = setup(settings=Settings(worker_image="csvkafka:test", max_worker_pods_per_namespace=0))
    kube.jobs = {f"other-{i}": other_job(f"other-{i}", 4) for i in range(10)}
    reconciler.reconcile(NS, NAME)
    assert len(kube.created) == 1


def test_every_pass_ensures_one_job_and_mirrors_it() -> None:
    kube, _, reconciler, events = setup()
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    [job] = kube.jobs
    assert kube.created == [job]
    assert kube.body["status"]["jobName"] == job
    assert [e.reason for e in events] == ["Starting"]


def test_a_finished_run_is_not_started_again_when_its_job_is_gone() -> None:
    kube, _, reconciler, _ = setup()
    reconciler.reconcile(NS, NAME)
    [job] = kube.jobs
    kube.complete(job)
    reconciler.reconcile(NS, NAME)
    assert kube.body["status"]["phase"] == "Succeeded"
    kube.jobs.clear()  # ttlSecondsAfterFinished
    reconciler.reconcile(NS, NAME)
    assert kube.created == [job] and not kube.jobs
    assert kube.body["status"]["phase"] == "Succeeded"


def test_a_restart_stops_the_old_run_first_and_moves_the_checkpoint_once() -> None:
    kube, checkpoints, reconciler, _ = setup()
    reconciler.reconcile(NS, NAME)
    [old] = kube.jobs
    kube.complete(old)
    kube.body["spec"]["restart"] = {"id": "again", "fromRow": 1001}

    reconciler.reconcile(NS, NAME)
    assert kube.deleted == [old]
    assert checkpoints.writes == []  # the old run's workers may still be writing
    assert kube.body["status"]["conditions"][0]["reason"] == "StoppingPreviousRun"

    kube.finish_deletions()
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    [new] = kube.jobs
    assert new != old
    assert checkpoints.writes == [("start_at_row", JOB_ID, "1001")]
    assert kube.body["status"]["observedRestartId"] == "again"
    assert "completionTime" not in kube.body["status"]


def test_a_reset_deletes_the_checkpoints_of_this_and_the_previous_shard_count() -> None:
    kube, checkpoints, reconciler, _ = setup()
    kube.body["status"] = {"shards": [{"index": 0, "jobId": "old#0/2", "state": "completed"},
                                      {"index": 1, "jobId": "old#1/2", "state": "completed"}]}
    kube.body["spec"]["restart"] = {"id": "reset", "fromRow": 1}
    reconciler.reconcile(NS, NAME)
    assert checkpoints.writes == [("delete", JOB_ID, "old#0/2", "old#1/2")]


def test_a_missing_secret_blocks_the_run_until_it_exists() -> None:
    kube, _, reconciler, events = setup(sink={"bootstrapServers": "b:9096", "topic": "people", "auth": {
        "mechanism": "scram-sha-512", "username": "u", "secretRef": {"name": "kafka"}}})
    reconciler.reconcile(NS, NAME)
    assert not kube.jobs
    assert (kube.body["status"]["phase"], events[-1].reason, events[-1].type) == ("Failed", "SecretNotFound",
                                                                                  "Warning")
    kube.secrets["kafka"] = frozenset({"username"})
    reconciler.reconcile(NS, NAME)
    assert not kube.jobs and events[-1].reason == "SecretKeyNotFound"
    kube.secrets["kafka"] = frozenset({"password"})
    reconciler.reconcile(NS, NAME)
    assert len(kube.jobs) == 1 and kube.body["status"]["phase"] == "Pending"


def test_a_missing_service_account_is_named() -> None:
    kube, _, reconciler, _ = setup(serviceAccountName="nobody")
    reconciler.reconcile(NS, NAME)
    failed = kube.body["status"]["conditions"][2]
    assert (failed["type"], failed["reason"]) == ("Failed", "ServiceAccountNotFound")
    assert "'nobody'" in failed["message"]


def test_suspend_and_resume_flip_the_same_job() -> None:
    kube, _, reconciler, _ = setup()
    reconciler.reconcile(NS, NAME)
    [job] = kube.jobs
    kube.body["spec"]["suspend"] = True
    reconciler.reconcile(NS, NAME)
    assert kube.jobs[job]["spec"]["suspend"] is True
    assert kube.body["status"]["phase"] == "Suspended"
    kube.body["spec"]["suspend"] = False
    reconciler.reconcile(NS, NAME)
    assert kube.jobs[job]["spec"]["suspend"] is False and kube.created == [job]


def test_deletion_with_retention_delete_waits_for_the_workers_then_deletes_the_checkpoints() -> None:
    kube, checkpoints, reconciler, _ = setup(checkpoint={"table": "checkpoints", "retention": "Delete"})
    reconciler.reconcile(NS, NAME)
    assert reconciler.finalize(kube.body) is False
    assert checkpoints.writes == []
    kube.finish_deletions()
    assert reconciler.finalize(kube.body) is True
    assert checkpoints.writes == [("delete", JOB_ID)]


def test_deleting_a_multi_object_import_deletes_its_plan_objects_and_receipts_too() -> None:
    kube, checkpoints, reconciler, _ = setup(source={"uri": "s3://exports/in/"},
                                             checkpoint={"table": "checkpoints", "retention": "Delete"})
    job = "exports/in/->people"
    rows = [["exports", "in/a.csv", 10, "e", "2026-11-30T00:00:00+00:00"]]
    checkpoints.raw_items = {
        f"{job}!plan": {"run_id": {"S": "initial"}, "state": {"S": "complete"}, "objects": {"N": "1"},
                        "total_bytes": {"N": "10"}, "pages": {"N": "1"}, "extent": {"N": "1"},
                        "generation": {"N": "1"}},
        f"{job}!plan!0": {"entries": {"B": zlib.compress(json.dumps(rows).encode())}}}
    reconciler.reconcile(NS, NAME)
    assert reconciler.finalize(kube.body) is False
    kube.finish_deletions()
    assert reconciler.finalize(kube.body) is True
    [(verb, *deleted)] = checkpoints.writes
    assert verb == "delete" and set(deleted) == {
        f"{job}#0/1", f"{job}@exports/in/a.csv", f"{job}@exports/in/a.csv!receipt", f"{job}!plan!0", f"{job}!plan",
        f"{job}!manifest"}


def test_a_stalled_workers_pod_is_deleted_once_and_the_job_spec_follows_the_deadline() -> None:
    clock = [START]
    kube, checkpoints, reconciler, events = setup(clock, stallTimeout="1m")
    reconciler.reconcile(NS, NAME)
    [job] = kube.jobs
    kube.pods = [{"metadata": {"name": "people-1"}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "worker", "state": {"running": {"startedAt": "2026-01-16T09:59:00Z"}}}]}}]
    checkpoints.items[JOB_ID] = Checkpoint(job_id=JOB_ID, last_line=500, timestamp=1, state=State.RUNNING)
    reconciler.reconcile(NS, NAME)
    clock[0] = START + timedelta(seconds=59)
    reconciler.reconcile(NS, NAME)
    assert kube.deleted_pods == []

    clock[0] = START + timedelta(seconds=61)
    reconciler.reconcile(NS, NAME)
    reconciler.reconcile(NS, NAME)
    assert kube.deleted_pods == ["people-1"]
    assert kube.body["status"]["stallRestarts"] == 1
    assert [(e.type, e.reason) for e in events][-1] == ("Warning", "Stalled")

    kube.body["spec"]["activeDeadlineSeconds"] = 3600
    reconciler.reconcile(NS, NAME)
    assert kube.jobs[job]["spec"]["activeDeadlineSeconds"] == 3600
    # An ended Job keeps the deadline it ran under.
    kube.complete(job)
    kube.body["spec"]["activeDeadlineSeconds"] = 7200
    reconciler.reconcile(NS, NAME)
    assert kube.jobs[job]["spec"]["activeDeadlineSeconds"] == 3600
