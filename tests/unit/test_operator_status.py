"""status.compute as data: what the user reads from `kubectl get csvimports` in each situation."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from csvkafka_operator.diagnosis import worker_error
from csvkafka_operator.jobs import job_name
from csvkafka_operator.models import CsvKafkaImport, ImportStatus, Phase
from csvkafka_operator.status import Blocker, Observed, compute, duration, finished, invalid, transition
from csvkafka_worker.checkpoint import Checkpoint, State

NOW = datetime(2026, 1, 16, 10, 5, tzinfo=UTC)
T0 = int(datetime(2026, 1, 16, 10, 0, tzinfo=UTC).timestamp())
JOB_ID = "exports/people.csv->people"


def resource(status: dict[str, Any] | None = None, generation: int = 2, **spec: Any) -> CsvKafkaImport:
    return CsvKafkaImport.from_body({
        "metadata": {"name": "people", "namespace": "data", "uid": "8d0c", "generation": generation},
        "spec": {"source": {"uri": "s3://exports/people.csv"},
                 "sink": {"bootstrapServers": "b:9092", "topic": "people"},
                 "checkpoint": {"table": "checkpoints", "jobId": JOB_ID}, **spec},
        "status": status or {},
    })


def job(*true: str, suspend: bool = False, reason: str = "", message: str = "",
        completion: str | None = None) -> dict[str, Any]:
    conditions = [{"type": t, "status": "True", "reason": reason, "message": message,
                   "lastTransitionTime": "2026-01-16T10:04:00Z"} for t in true]
    status = {"startTime": "2026-01-16T10:00:00Z", "conditions": conditions}
    if completion:
        status["completionTime"] = completion
    return {"metadata": {"name": "people-x"}, "spec": {"suspend": suspend}, "status": status}


def pod(phase: str, *, terminated: dict[str, Any] | None = None, waiting: dict[str, Any] | None = None,
        conditions: list[dict[str, Any]] | None = None, name: str = "people-x-abcde") -> dict[str, Any]:
    state = {"terminated": terminated} if terminated else {"waiting": waiting} if waiting else {"running": {}}
    return {"metadata": {"name": name, "creationTimestamp": "2026-01-16T10:00:00Z"},
            "status": {"phase": phase, "startTime": "2026-01-16T10:00:01Z", "conditions": conditions or [],
                       "containerStatuses": [{"name": "worker", "state": state}]}}


def worker_log(reason: str, message: str, exit_code: int) -> str:
    error = {"ts": T0, "level": "error", "event": "error", "job": JOB_ID, "reason": reason, "exit_code": exit_code,
             "message": message}
    return f'{{"ts": 1, "event": "progress", "row": 5}}\n{orjson.dumps(error).decode()}\ncsvkafka: error: {message}\n'


def failed_pod(reason: str, message: str, exit_code: int, finished_at: str = "2026-01-16T10:03:00Z") -> dict[str, Any]:
    return pod("Failed", terminated={"exitCode": exit_code, "reason": "Error", "finishedAt": finished_at,
                                     "message": worker_log(reason, message, exit_code)})


def checkpoint(job_id: str = JOB_ID, **fields: Any) -> Checkpoint:
    return Checkpoint(job_id=job_id, **{"timestamp": T0 + 120, **fields})


def running_checkpoint(**fields: Any) -> Checkpoint:
    # 10,000 bytes of rows read after the header (range_start 100), 10 bytes a row, 50 rows/s.
    return checkpoint(last_line=1000, total_sent=990, rows_skipped=10, byte_offset=10_100, range_start=100,
                      bytes_total=100_000, rows_per_second=50.0, state=State.RUNNING, **fields)


def observe(res: CsvKafkaImport, **observed: Any) -> ImportStatus:
    if "checkpoints" in observed:
        observed["checkpoints"] = {cp.job_id: cp for cp in observed["checkpoints"]}
    return compute(res, Observed(**{"job": None, **observed}), NOW)


def conditions(status: ImportStatus) -> dict[str, tuple[str, str]]:
    return {c.type: (c.status, c.reason) for c in status.conditions}


def test_a_running_import_shows_rows_progress_rate_and_eta() -> None:
    status = observe(resource(), job=job(), pods=[pod("Running")], checkpoints=[running_checkpoint()])
    assert status.phase is Phase.RUNNING
    assert (status.records_read, status.records_sent, status.records_bad) == (1000, 990, 10)
    assert (status.bytes_read, status.bytes_total, status.progress) == (10_000, 100_000, "10.0%")
    assert (status.rows_per_second, status.eta) == (50, "3m")  # 90,000 bytes left at 500 bytes/s
    assert status.last_checkpoint_time == "2026-01-16T10:02:00Z"
    assert status.job_name == job_name(resource()) and status.start_time == "2026-01-16T10:00:00Z"
    assert status.observed_generation == 2
    assert conditions(status) == {"Progressing": ("True", "Running"), "Succeeded": ("False", "Running"),
                                  "Failed": ("False", "Running")}
    [shard] = status.shards
    assert (shard.index, shard.job_id, shard.state, shard.progress) == (0, JOB_ID, "running", "10.0%")


def test_a_finished_import_shows_all_rows_and_the_average_rate() -> None:
    done = checkpoint(last_line=30_000, total_sent=30_000, byte_offset=300_100, range_start=100, bytes_total=300_000,
                      state=State.COMPLETED, rows_per_second=900.0)
    status = observe(resource(), job=job("Complete", completion="2026-01-16T10:05:00Z"), checkpoints=[done])
    assert status.phase is Phase.SUCCEEDED
    assert (status.records_sent, status.progress, status.eta) == (30_000, "100%", None)
    assert status.rows_per_second == 100  # 30,000 rows in 5 minutes, not the last checkpoint's 900
    assert status.completion_time == "2026-01-16T10:05:00Z"
    assert conditions(status) == {"Progressing": ("False", "Completed"), "Succeeded": ("True", "Completed"),
                                  "Failed": ("False", "Succeeded")}
    assert "30,000 rows read, 30,000 sent, 0 bad" in status.condition("Succeeded").message
    assert finished(resource(status=status.to_api()))


def test_bad_input_fails_with_the_workers_reason_and_what_to_do() -> None:
    missing = "s3://exports/people.csv does not exist; check source.uri"
    status = observe(resource(), job=job("FailureTarget", "Failed", reason="PodFailurePolicy"),
                     pods=[failed_pod("SourceNotFound", missing, 65)])
    assert status.phase is Phase.FAILED
    assert conditions(status)["Failed"] == ("True", "SourceNotFound")
    assert conditions(status)["Progressing"] == ("False", "SourceNotFound")
    message = status.condition("Failed").message
    assert missing in message and "kubectl csvimport restart people" in message
    assert status.completion_time == "2026-01-16T10:04:00Z"


def test_a_changed_source_points_to_reset_not_restart() -> None:
    changed = failed_pod("SourceChanged", "s3://exports/people.csv changed since this import started", 65)
    status = observe(resource(), job=job("Failed", reason="PodFailurePolicy"), pods=[changed])
    assert "kubectl csvimport reset people" in status.condition("Failed").message


def test_without_pods_the_failure_is_told_from_the_job_and_the_checkpoint() -> None:
    broken = checkpoint(last_line=10, state=State.FAILED, message="Kafka did not accept rows: topic deleted")
    status = observe(resource(), job=job("Failed", reason="BackoffLimitExceeded", message="Job has reached the "
                                                                                          "specified backoff limit"),
                     checkpoints=[broken])
    assert conditions(status)["Failed"] == ("True", "BackoffLimitExceeded")
    assert status.condition("Failed").message.startswith("Kafka did not accept rows: topic deleted. Then:")


def test_a_failed_attempt_is_the_headline_until_the_retry_gets_going() -> None:
    unreachable = failed_pod("KafkaUnreachable", "brokers b:9092 unreachable", 75, finished_at="2026-01-16T10:03:00Z")
    retry = pod("Running", name="people-x-fghij")
    before = observe(resource(), job=job(), pods=[unreachable, retry], checkpoints=[running_checkpoint()])
    assert before.phase is Phase.RUNNING
    assert conditions(before)["Progressing"] == ("True", "KafkaUnreachable")
    assert before.condition("Progressing").message.endswith("brokers b:9092 unreachable (retrying)")
    after = observe(resource(), job=job(), pods=[unreachable, retry],
                    checkpoints=[running_checkpoint(timestamp=T0 + 240)])
    assert conditions(after)["Progressing"] == ("True", "Running")


def test_an_interrupted_pod_is_reported_as_such_and_not_as_a_failure() -> None:
    evicted = pod("Failed", terminated={"exitCode": 143, "finishedAt": "2026-01-16T10:03:00Z", "message": ""},
                  conditions=[{"type": "DisruptionTarget", "status": "True", "reason": "EvictionByEvictionAPI",
                               "message": "Eviction API: evicting"}])
    status = observe(resource(capacity="spot"), job=job(), pods=[evicted], checkpoints=[running_checkpoint()])
    assert status.phase is Phase.RUNNING
    assert conditions(status)["Progressing"] == ("True", "Interrupted")
    assert "Eviction API: evicting" in status.condition("Progressing").message
    event = transition(ImportStatus(), status)
    assert event is not None and event.type == "Normal"


def test_a_pod_with_no_matching_node_says_which_nodes_the_capacity_needs() -> None:
    pending = pod("Pending", conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                          "message": "0/3 nodes are available"}])
    pending["status"]["containerStatuses"] = []
    status = observe(resource(capacity="spot"), job=job(), pods=[pending])
    assert status.phase is Phase.PENDING
    assert conditions(status)["Progressing"] == ("True", "Unschedulable")
    assert "eks.amazonaws.com/capacityType=SPOT" in status.condition("Progressing").message


def test_a_pod_that_cannot_start_is_reported_even_while_other_shards_run() -> None:
    stuck = pod("Pending", waiting={"reason": "CreateContainerConfigError", "message": 'secret "kafka" not found'})
    status = observe(resource(), job=job(), pods=[pod("Running", name="other"), stuck])
    assert conditions(status)["Progressing"] == ("True", "CreateContainerConfigError")
    assert 'secret "kafka" not found' in status.condition("Progressing").message


def test_a_suspended_import_is_suspended_not_progressing() -> None:
    status = observe(resource(suspend=True), job=job(suspend=True), checkpoints=[running_checkpoint()])
    assert status.phase is Phase.SUSPENDED
    assert conditions(status)["Progressing"] == ("False", "Suspended")
    assert "kubectl csvimport resume people" in status.condition("Progressing").message
    assert status.eta is None and status.rows_per_second is None


def test_a_missing_secret_fails_the_import_but_leaves_the_run_open() -> None:
    status = observe(resource(), blocker=Blocker("SecretNotFound", "Secret 'kafka' does not exist", failed=True))
    assert status.phase is Phase.FAILED
    assert conditions(status)["Failed"] == ("True", "SecretNotFound")
    # No completion: the operator keeps checking, and starts the run once the Secret exists.
    assert status.completion_time is None
    assert not finished(resource(status=status.to_api()))


def test_waiting_for_the_previous_run_is_pending() -> None:
    status = observe(resource(), blocker=Blocker("StoppingPreviousRun", "waiting for Job people-old", failed=False))
    assert (status.phase, conditions(status)["Progressing"]) == (Phase.PENDING, ("True", "StoppingPreviousRun"))


def test_transition_times_move_only_when_a_condition_flips() -> None:
    first = observe(resource(), job=job(), pods=[pod("Running")], checkpoints=[running_checkpoint()])
    later = compute(resource(status=first.to_api()), Observed(job=job("Complete"), checkpoints={}),
                    NOW.replace(minute=30))
    times = {c.type: c.last_transition_time for c in later.conditions}
    assert times["Failed"] == "2026-01-16T10:05:00Z"  # False all along
    assert times["Succeeded"] == times["Progressing"] == "2026-01-16T10:30:00Z"


def test_once_the_job_is_gone_the_recorded_outcome_stays() -> None:
    done = observe(resource(), job=job("Complete", completion="2026-01-16T10:05:00Z"), checkpoints=[
        checkpoint(last_line=7, total_sent=7, state=State.COMPLETED)])
    edited = resource(status=done.to_api(), generation=3)
    after = observe(edited)  # the Job's TTL removed it, and the checkpoints were deleted by hand
    assert after.model_copy(update={"observed_generation": 2, "conditions": done.conditions}) == done
    assert after.observed_generation == 3
    assert {c.observed_generation for c in after.conditions} == {3}


def test_shards_add_up_and_an_unstarted_shard_leaves_the_totals_unknown() -> None:
    sharded = resource(parallelism=2)
    ids = sharded.spec.shard_job_ids()
    started = observe(sharded, job=job(), pods=[pod("Running")], checkpoints=[
        checkpoint(ids[0], last_line=10, total_sent=10, byte_offset=100, range_start=0, bytes_total=400,
                   state=State.RUNNING, rows_per_second=7.0)])
    assert [s.state for s in started.shards] == ["running", "pending"]
    assert (started.records_read, started.bytes_total, started.progress) == (10, None, None)
    both = observe(sharded, job=job(), pods=[pod("Running")], checkpoints=[
        checkpoint(ids[0], last_line=10, total_sent=10, byte_offset=100, range_start=0, bytes_total=400,
                   state=State.RUNNING, rows_per_second=7.0),
        checkpoint(ids[1], last_line=20, total_sent=19, rows_dead_lettered=1, byte_offset=700, range_start=400,
                   bytes_total=600, state=State.RUNNING, rows_per_second=5.0)])
    assert (both.records_read, both.records_sent, both.records_bad) == (30, 29, 1)
    assert (both.bytes_read, both.bytes_total, both.progress, both.rows_per_second) == (400, 1000, "40.0%", 12)


def test_the_restart_is_observed_once_its_job_exists() -> None:
    restarted = resource(status={"observedRestartId": "one"}, restart={"id": "two", "fromRow": 1})
    assert observe(restarted, blocker=Blocker("StoppingPreviousRun", "", failed=False)).observed_restart_id == "one"
    assert observe(restarted, job=job()).observed_restart_id == "two"


def test_a_spec_the_model_refuses_fails_with_the_field_named() -> None:
    status = invalid(ImportStatus(), 4, "spec.source.csv.encoding: unknown encoding 'utf-99'", NOW)
    assert (status.phase, conditions(status)["Failed"]) == (Phase.FAILED, ("True", "InvalidSpec"))
    assert status.condition("Failed").message.startswith("spec.source.csv.encoding: unknown encoding")


def test_events_are_posted_on_transitions_only() -> None:
    running = observe(resource(), job=job(), pods=[pod("Running")], checkpoints=[running_checkpoint()])
    failed = observe(resource(status=running.to_api()), job=job("Failed", reason="PodFailurePolicy"),
                     pods=[failed_pod("BadInput", "row 7: quoted field not closed", 65)])
    assert transition(running, running) is None
    event = transition(running, failed)
    assert event is not None and (event.type, event.reason) == ("Warning", "BadInput")
    started = transition(ImportStatus(), running)
    assert started is not None and (started.type, started.reason) == ("Normal", "Running")


@pytest.mark.parametrize(("log", "code", "expected"), [
    (worker_log("TopicNotFound", "topic people does not exist", 65), 65, ("TopicNotFound", "topic people does not "
                                                                                           "exist")),
    # The kubelet keeps only the log's tail: the first line may be cut.
    ('ts": 1, "event": "progress"}\n' + worker_log("BadInput", "row 3 is bad", 65), 65, ("BadInput", "row 3 is bad")),
    ("Traceback ...\ncsvkafka: error: something odd\n", 65, ("BadInput", "something odd")),
    ('{"event": "start", "row": 0}\n', 137,
     ("WorkerFailed", "the worker was killed by signal 9 (exit code 137) before it could report")),
    ("", 3, ("WorkerFailed", "the worker exited with code 3")),
])
def test_the_workers_error_is_read_from_its_termination_message(log: str, code: int,
                                                                 expected: tuple[str, str]) -> None:
    assert worker_error(log, code) == expected


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0s"), (45, "45s"), (200, "3m20s"), (180, "3m"),
                                               (7500, "2h5m"), (7200, "2h"), (277_200, "3d5h")])
def test_durations_read_like_kubectl_ages(seconds: float, text: str) -> None:
    assert duration(seconds) == text


# -- many objects ----------------------------------------------------------------------------------

MANY = {"source": {"uri": "s3://exports/2026-11/"}}


def summary(index: int, count: int, **fields: Any) -> Checkpoint:
    """A shard's summary item of a multi-object import."""
    return checkpoint(f"{JOB_ID}#{index}/{count}", **fields)


def failed_list(*uris: str, reason: str = "BadHeader") -> str:
    return json.dumps([{"uri": uri, "reason": reason, "message": f"{uri} has no header"} for uri in uris])


def test_a_multi_object_import_reads_a_summary_item_per_shard_even_with_one_shard() -> None:
    assert resource(**MANY).spec.shard_job_ids() == [f"{JOB_ID}#0/1"]
    assert resource(parallelism=2, **MANY).spec.shard_job_ids() == [f"{JOB_ID}#0/2", f"{JOB_ID}#1/2"]
    assert resource().spec.shard_job_ids() == [JOB_ID]
    assert resource(parallelism=2).spec.shard_job_ids() == [f"{JOB_ID}#0/2", f"{JOB_ID}#1/2"]


def test_objects_done_of_total_and_the_slowest_shard_come_from_the_shards_summaries() -> None:
    many = resource(parallelism=3, **MANY)
    status = observe(many, job=job(), pods=[pod("Running")], checkpoints=[
        summary(0, 3, last_line=500, total_sent=500, byte_offset=900, bytes_total=1000, state=State.RUNNING,
                objects_total=8, objects_done=6, current_object="s3://exports/2026-11/g.csv", rows_per_second=9.0),
        summary(1, 3, last_line=200, total_sent=200, byte_offset=250, bytes_total=1000, state=State.RUNNING,
                objects_total=7, objects_done=2, current_object="s3://exports/2026-11/p.csv", rows_per_second=9.0),
        summary(2, 3, last_line=800, total_sent=800, byte_offset=1000, bytes_total=1000, state=State.COMPLETED,
                objects_total=8, objects_done=8)])
    assert status.objects is not None
    assert (status.objects.total, status.objects.done, status.objects.failed, status.objects.running) == (23, 16, 0, 2)
    assert status.objects_summary == "16/23"
    assert status.slowest_shard is not None
    assert (status.slowest_shard.index, status.slowest_shard.progress) == (1, "25.0%")
    assert status.records_read == 1500 and status.progress == "71.7%"
    assert status.condition("ObjectsFailed") is None
    assert status.condition("Progressing").message.endswith(
        "1,500 rows read from s3://exports/2026-11/, objects done 16/23")


def test_until_every_shard_has_counted_its_objects_the_total_is_unknown() -> None:
    status = observe(resource(parallelism=2, **MANY), job=job(), pods=[pod("Running")], checkpoints=[
        summary(0, 2, objects_total=5, objects_done=3, state=State.RUNNING)])
    assert status.objects is not None and status.objects.total is None
    assert status.objects_summary == "3/?"


def test_a_single_object_import_has_no_object_counts() -> None:
    api = observe(resource(), job=job(), pods=[pod("Running")], checkpoints=[running_checkpoint()]).to_api()
    assert not {"objects", "objectsSummary", "failedObjects", "slowestShard"} & set(api)


def test_skipped_objects_leave_the_import_succeeded_with_an_objects_failed_condition_and_a_warning() -> None:
    skip = resource(parallelism=2, onObjectError="skip", **MANY)
    running = observe(skip, job=job(), pods=[pod("Running")], checkpoints=[
        summary(0, 2, state=State.RUNNING, objects_total=5, objects_done=1)])
    done = observe(resource(status=running.to_api(), parallelism=2, onObjectError="skip", **MANY),
                   job=job("Complete", completion="2026-01-16T10:05:00Z"), checkpoints=[
        summary(0, 2, state=State.COMPLETED, objects_total=5, objects_done=3, objects_failed=2,
                failed_objects=failed_list("s3://exports/2026-11/a.csv", "s3://exports/2026-11/b.csv")),
        summary(1, 2, state=State.COMPLETED, objects_total=4, objects_done=4)])
    assert done.phase is Phase.SUCCEEDED
    assert done.objects_summary == "7/9, 2 failed"
    assert [(f.uri, f.reason) for f in done.failed_objects or ()] == [
        ("s3://exports/2026-11/a.csv", "BadHeader"), ("s3://exports/2026-11/b.csv", "BadHeader")]
    assert conditions(done)["ObjectsFailed"] == ("True", "ObjectsFailed")
    message = done.condition("ObjectsFailed").message
    assert message.startswith("2 objects failed and were skipped (spec.onObjectError: skip); first "
                              "s3://exports/2026-11/a.csv: BadHeader: s3://exports/2026-11/a.csv has no header")
    assert "kubectl csvimport objects people" in message
    assert "objects done 7/9, 2 failed" in done.condition("Succeeded").message
    event = transition(running, done)
    assert event is not None and (event.type, event.reason, event.message) == ("Warning", "ObjectsFailed", message)
    # Told once: the next pass has nothing new to say.
    assert transition(done, done) is None


def test_the_failed_objects_listed_in_the_status_are_capped() -> None:
    uris = [f"s3://exports/2026-11/{n:02}.csv" for n in range(30)]
    status = observe(resource(parallelism=2, onObjectError="skip", **MANY), job=job(), pods=[pod("Running")],
                     checkpoints=[summary(0, 2, objects_failed=15, failed_objects=failed_list(*uris[:15])),
                                  summary(1, 2, objects_failed=15, failed_objects=failed_list(*uris[15:]))])
    assert status.objects is not None and status.objects.failed == 30
    assert [f.uri for f in status.failed_objects or ()] == uris[:20]


def test_an_unreadable_failed_list_still_counts_its_objects() -> None:
    status = observe(resource(onObjectError="skip", **MANY), job=job(), pods=[pod("Running")],
                     checkpoints=[summary(0, 1, objects_failed=1, failed_objects="[{not json")])
    assert status.objects is not None and status.objects.failed == 1 and status.failed_objects is None
    assert status.condition("ObjectsFailed").message.startswith("1 object failed and was skipped (")


def test_a_failed_object_fails_the_import_with_its_reason_when_on_object_error_is_fail() -> None:
    # What the worker leaves: its shard's summary failed with the object's reason, and its own line.
    said = ("object s3://exports/2026-11/c.csv failed: its header is id,total, not id,amount (csv.expectedHeader); "
            "the import stops (onObjectError: fail)")
    failed = summary(0, 1, state=State.FAILED, objects_total=4, objects_done=1, reason="BadInput", message=said)
    for pods in ([failed_pod("BadInput", said, 65)], []):
        status = observe(resource(**MANY), job=job("Failed", reason="PodFailurePolicy"), pods=pods,
                         checkpoints=[failed])
        assert status.phase is Phase.FAILED
        assert conditions(status)["Failed"] == ("True", "BadInput")
        assert f"{said}. Then: once fixed, kubectl csvimport restart people" in status.condition("Failed").message


def test_a_new_rerun_id_is_a_new_run_observed_once_its_job_exists() -> None:
    done = observe(resource(**MANY), job=job("Complete", completion="2026-01-16T10:05:00Z"),
                   checkpoints=[summary(0, 1, state=State.COMPLETED, objects_total=3, objects_done=3)])
    assert finished(resource(status=done.to_api(), **MANY))
    rerun = resource(status=done.to_api(), rerun={"id": "late-files", "mode": "changed"}, **MANY)
    assert not finished(rerun)
    assert observe(rerun, blocker=Blocker("StoppingPreviousRun", "", failed=False)).observed_rerun_id is None
    started = observe(rerun, job=job())
    assert started.observed_rerun_id == "late-files" and started.job_name == job_name(rerun) != done.job_name
    assert finished(resource(status=started.to_api(), rerun={"id": "late-files", "mode": "changed"}, **MANY)) is False


def test_the_summaries_of_the_previous_run_do_not_count_for_a_new_rerun() -> None:
    rerun = resource(rerun={"id": "late-files"}, **MANY)
    old = summary(0, 1, state=State.COMPLETED, objects_total=3, objects_done=3, rerun_id="initial")
    waiting = observe(rerun, job=job(), checkpoints=[old])
    assert waiting.phase is Phase.PENDING and [s.state for s in waiting.shards] == ["pending"]
    assert waiting.objects_summary == "0/?"
    started = observe(rerun, job=job(), pods=[pod("Running")], checkpoints=[
        summary(0, 1, state=State.RUNNING, objects_total=5, objects_done=3, rerun_id="late-files")])
    assert started.phase is Phase.RUNNING and started.objects_summary == "3/5"
    # Before any rerun, an item is the initial run's whatever it says.
    assert observe(resource(**MANY), job=job(), checkpoints=[old]).objects_summary == "3/3"
