"""Stalled workers as data: when a shard counts as stalled, what the status and the events say, which pod
is stopped (once), and how an import whose Job gave up or ran out of time ends."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import timedelta
from typing import Any

import pytest

from csvkafka_operator.jobs import job_name
from csvkafka_operator.models import ImportStatus, InvalidResource, Phase
from csvkafka_operator.stalls import newly_stalled
from csvkafka_operator.status import Observed, compute, transition
from csvkafka_operator.timestamps import rfc3339
from csvkafka_worker.checkpoint import Checkpoint
from tests.unit.test_operator_status import JOB_ID, NOW, conditions, job, resource, running_checkpoint

POD = "people-x-abcde"


def worker_pod(started: timedelta, *, name: str = POD, index: int | None = None, deleting: bool = False
               ) -> dict[str, Any]:
    """A Running worker pod whose container started `started` before NOW."""
    meta: dict[str, Any] = {"name": name, "creationTimestamp": rfc3339(NOW - started)}
    if index is not None:
        meta["annotations"] = {"batch.kubernetes.io/job-completion-index": str(index)}
    if deleting:
        meta["deletionTimestamp"] = rfc3339(NOW)
    return {"metadata": meta, "status": {"phase": "Running", "startTime": rfc3339(NOW - started),
                                         "containerStatuses": [{"name": "worker", "state": {
                                             "running": {"startedAt": rfc3339(NOW - started)}}}]}}


def seen(last_moved: timedelta, *, job_id: str = JOB_ID, index: int = 0, stalled_pod: str | None = None,
         records_read: int = 1000, bytes_read: int = 10_000) -> dict[str, Any]:
    """A shard as an earlier pass recorded it: at the running checkpoint's position since `last_moved` ago."""
    shard = {"index": index, "jobId": job_id, "state": "running", "recordsRead": records_read,
             "bytesRead": bytes_read, "lastProgressTime": rfc3339(NOW - last_moved)}
    return shard | ({"stalledPod": stalled_pod} if stalled_pod else {})


def earlier(*shards: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {"jobName": job_name(resource()), "phase": "Running", "shards": list(shards), **status}


def observe(status: dict[str, Any], pods: list[dict[str, Any]], checkpoints: list[Checkpoint] | None = None,
            the_job: dict[str, Any] | None = None, **spec: Any) -> tuple[ImportStatus, ImportStatus]:
    """(the status before, the status now) of an import observed with these pods and checkpoints."""
    res = resource(status=status, **spec)
    found = checkpoints if checkpoints is not None else [running_checkpoint()]
    now = compute(res, Observed(job=the_job or job(), pods=pods, checkpoints={cp.job_id: cp for cp in found}), NOW)
    return res.status, now


def test_a_shard_that_has_not_moved_for_the_timeout_is_stalled_and_its_pod_named_once() -> None:
    before, now = observe(earlier(seen(timedelta(minutes=11))), [worker_pod(timedelta(minutes=30))])
    assert conditions(now)["Stalled"] == ("True", "Stalled")
    assert conditions(now)["Progressing"] == ("True", "Stalled")
    assert now.phase is Phase.RUNNING
    message = now.condition("Stalled").message
    assert "shard 0 made no progress for more than spec.stallTimeout (10m) after row 1,000" in message
    assert f"its pod {POD} was stopped" in message and "Stall restarts so far: 1" in message
    [shard] = now.shards
    assert (shard.stalled_pod, shard.last_progress_time) == (POD, rfc3339(NOW - timedelta(minutes=11)))
    assert now.stall_restarts == 1
    assert (now.rows_per_second, now.eta) == (0, None)  # the checkpoint's rate is from before the stall
    assert newly_stalled(before, now.job_name or "", now.shards) == [POD]
    event = transition(before, now)
    assert event is not None and (event.type, event.reason) == ("Warning", "Stalled")


def test_a_shard_that_moved_is_not_stalled_and_its_progress_time_is_now() -> None:
    _, now = observe(earlier(seen(timedelta(minutes=11), records_read=900, bytes_read=9_000)),
                     [worker_pod(timedelta(minutes=30))])
    assert "Stalled" not in conditions(now)
    assert now.shards[0].last_progress_time == rfc3339(NOW) and now.stall_restarts is None


def test_a_new_pod_gets_the_whole_timeout_from_its_start() -> None:
    _, now = observe(earlier(seen(timedelta(minutes=30))), [worker_pod(timedelta(minutes=9))])
    assert now.shards[0].stalled_pod is None and "Stalled" not in conditions(now)


def test_while_the_stopped_pod_goes_and_its_successor_starts_the_stall_stays_without_a_second_restart() -> None:
    progressing = {"type": "Progressing", "status": "True", "reason": "Stalled", "message": "…",
                   "lastTransitionTime": "2026-01-16T10:00:00Z"}
    status = earlier(seen(timedelta(minutes=12), stalled_pod=POD), stallRestarts=1, conditions=[progressing])
    for pods in ([worker_pod(timedelta(minutes=30), deleting=True)], [worker_pod(timedelta(seconds=5), name="new")]):
        before, now = observe(status, pods)
        assert conditions(now)["Stalled"] == ("True", "Stalled")
        assert (now.shards[0].stalled_pod, now.stall_restarts) == (POD, 1)
        assert newly_stalled(before, now.job_name or "", now.shards) == []
        assert transition(before, now) is None


def test_the_successor_stalling_too_is_a_second_restart() -> None:
    _, now = observe(earlier(seen(timedelta(minutes=25), stalled_pod=POD), stallRestarts=1),
                     [worker_pod(timedelta(minutes=11), name="second")])
    assert (now.shards[0].stalled_pod, now.stall_restarts) == ("second", 2)


def test_the_condition_clears_when_the_shard_moves_again() -> None:
    status = earlier(seen(timedelta(minutes=12), stalled_pod=POD, records_read=900, bytes_read=9_000),
                     stallRestarts=1, conditions=[{"type": "Stalled", "status": "True", "reason": "Stalled",
                                                   "message": "…", "lastTransitionTime": "2026-01-16T10:00:00Z"}])
    _, now = observe(status, [worker_pod(timedelta(minutes=1), name="new")])
    assert conditions(now)["Stalled"] == ("False", "ProgressResumed")
    assert conditions(now)["Progressing"] == ("True", "Running")
    assert now.shards[0].stalled_pod is None and now.stall_restarts == 1


@pytest.mark.parametrize("quiet", [
    pytest.param({"stallTimeout": "0s"}, id="turned-off"),
    pytest.param({"suspend": True}, id="suspended"),
])
def test_no_stall_when_the_watch_is_off_or_the_job_is_suspended(quiet: dict[str, Any]) -> None:
    _, now = observe(earlier(seen(timedelta(hours=5))), [worker_pod(timedelta(hours=6))],
                     the_job=job(suspend=bool(quiet.get("suspend"))), **quiet)
    assert now.shards[0].stalled_pod is None and "Stalled" not in conditions(now)


def test_the_stalled_shard_of_an_indexed_job_is_the_pods_index() -> None:
    ids = resource(parallelism=2).spec.shard_job_ids()
    checkpoints = [replace(running_checkpoint(), job_id=i) for i in ids]
    status = earlier(seen(timedelta(minutes=1), job_id=ids[0]), seen(timedelta(minutes=20), job_id=ids[1], index=1))
    _, now = observe(status, [worker_pod(timedelta(hours=1), name="a", index=0),
                              worker_pod(timedelta(hours=1), name="b", index=1)], checkpoints, parallelism=2)
    assert [s.stalled_pod for s in now.shards] == [None, "b"]
    assert "shard 1 made no progress" in now.condition("Stalled").message
    assert "the Job allows 6 failed pods per shard" in now.condition("Stalled").message


def test_when_stalls_use_up_the_jobs_retries_the_import_fails_as_stalled() -> None:
    _, now = observe(earlier(seen(timedelta(minutes=40), stalled_pod=POD), stallRestarts=7), [],
                     the_job=job("Failed", reason="BackoffLimitExceeded", message="Job has reached the backoff limit"))
    assert now.phase is Phase.FAILED
    assert conditions(now)["Failed"] == ("True", "Stalled")
    assert conditions(now)["Stalled"] == ("False", "Failed")
    assert "the Job's retries are used up" in now.condition("Failed").message


def test_a_deadline_exceeded_says_which_setting_to_raise() -> None:
    late = job("Failed", reason="DeadlineExceeded", message="Job was active longer than specified")
    late["spec"]["activeDeadlineSeconds"] = 600
    # Raised since: the message names the deadline the Job ran under.
    _, now = observe(earlier(seen(timedelta(minutes=1))), [], the_job=late, activeDeadlineSeconds=900)
    assert now.phase is Phase.FAILED
    assert conditions(now)["Failed"] == ("True", "DeadlineExceeded")
    message = now.condition("Failed").message
    assert "ran longer than spec.activeDeadlineSeconds (600s)" in message and "after 1,000 rows" in message
    assert "raise spec.activeDeadlineSeconds" in message and "kubectl csvimport restart people" in message
    assert transition(ImportStatus(), now).type == "Warning"


@pytest.mark.parametrize(("timeout", "seconds"), [("10m", 600), ("90s", 90), ("1h30m", 5400), ("2h", 7200),
                                                  ("0s", 0)])
def test_stall_timeouts_are_go_durations(timeout: str, seconds: int) -> None:
    assert resource(stallTimeout=timeout).spec.stall_timeout_seconds == seconds


@pytest.mark.parametrize(("changes", "problem"), [
    ({"stallTimeout": "10 minutes"}, "is not a duration such as 90s, 10m or 1h30m"),
    ({"stallTimeout": ""}, "is not a duration"),
    ({"stallTimeout": "5s"}, "stallTimeout must be 0s (off) or at least 10s"),
    ({"stallTimeout": "35s"}, "stallTimeout must be at least checkpoint.leaseSeconds + 2 x checkpoint.everySeconds "
                              "(40s here)"),
    ({"stallTimeout": "24s", "checkpoint": {"table": "checkpoints", "everySeconds": 10, "leaseSeconds": 5}},
     "(25s here)"),
    ({"activeDeadlineSeconds": 0}, "activeDeadlineSeconds: Input should be greater than or equal to 1"),
])
def test_a_bad_stall_timeout_or_deadline_is_refused_by_name(changes: dict[str, Any], problem: str) -> None:
    with pytest.raises(InvalidResource, match=re.escape(problem)):
        resource(**changes)
