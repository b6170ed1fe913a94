"""The import's status as a pure function of what was observed: its Job, pods and checkpoints.

Kubernetes objects come in as the API's JSON (camelCase dicts), checkpoints as the worker's
Checkpoint; out comes the whole status the operator owns, conditions with their transition times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from csvkafka_operator import stalls
from csvkafka_operator.diagnosis import STUCK, reports
from csvkafka_operator.jobs import RETRIES, job_name
from csvkafka_operator.models import (
    MAX_FAILED_OBJECTS,
    Condition,
    CsvKafkaImport,
    FailedObject,
    ImportStatus,
    ObjectCounts,
    Phase,
    ShardStatus,
    SlowestShard,
)
from csvkafka_operator.timestamps import epoch, from_epoch, rfc3339
from csvkafka_worker.checkpoint import Checkpoint, State
from csvkafka_worker.errors import Reason
from csvkafka_worker.spec import ObjectErrorAction

Json = Mapping[str, Any]

ACTIVE = (Phase.PENDING, Phase.RUNNING)
STALLED = "Stalled"
OBJECTS_FAILED = "ObjectsFailed"
# Progressing reasons that are business as usual; any other one is posted as a Warning event.
ROUTINE = frozenset({"Creating", "Starting", "Running", Reason.INTERRUPTED, "Completing", "Suspended", "Completed",
                     "StoppingPreviousRun", "Queued"})


@dataclass(frozen=True)
class Blocker:
    """Why the run's Job does not exist: it cannot start (failed) or must wait."""

    reason: str
    message: str
    failed: bool


@dataclass(frozen=True)
class Observed:
    job: Json | None
    pods: Sequence[Json] = ()
    checkpoints: Mapping[str, Checkpoint] = field(default_factory=dict)
    blocker: Blocker | None = None


@dataclass(frozen=True)
class Objects:
    """A multi-object import's objects, as its shards' summary items count them."""

    counts: ObjectCounts
    failed: tuple[FailedObject, ...]

    @property
    def summary(self) -> str:
        total = "?" if self.counts.total is None else str(self.counts.total)
        failed = f", {self.counts.failed} failed" if self.counts.failed else ""
        return f"{self.counts.done}/{total}{failed}"


@dataclass(frozen=True)
class Outcome:
    phase: Phase
    reason: str
    message: str


@dataclass(frozen=True)
class Event:
    type: str
    reason: str
    message: str


def finished(resource: CsvKafkaImport) -> bool:
    """The current run ended (its Job may since have been removed by its TTL)."""
    status = resource.status
    return status.job_name == job_name(resource) and status.completion_time is not None


def compute(resource: CsvKafkaImport, observed: Observed, now: datetime) -> ImportStatus:
    previous = resource.status
    generation = resource.metadata.generation
    if observed.job is None and observed.blocker is None and finished(resource):
        # The Job is gone and the run's outcome is already recorded: only the generation moves.
        return previous.model_copy(update={"observed_generation": generation, "conditions": tuple(
            c.model_copy(update={"observed_generation": generation}) for c in previous.conditions)})

    observed = replace(observed, checkpoints=_this_run(resource, observed.checkpoints))
    name = job_name(resource)
    shards = _tracked(resource, observed, now)
    stall_restarts = ((previous.stall_restarts or 0) if previous.job_name == name else 0) + len(
        stalls.newly_stalled(previous, name, shards))
    stalled = _stall_message(resource, shards, stall_restarts)
    objects = None if resource.spec.source.single_object else _objects(resource, observed.checkpoints)
    outcome = _outcome(resource, observed, shards, stalled, objects)
    start = previous.start_time if previous.job_name == name and previous.start_time else _job_time(
        observed.job, "startTime")
    completion = _completion_time(outcome, observed, now)
    read = _sum_known([s.bytes_read for s in shards])
    bytes_total = _sum_known([s.bytes_total for s in shards])
    records_read = sum(s.records_read for s in shards)
    checkpoint_times = [cp.timestamp for cp in observed.checkpoints.values() if cp.timestamp]
    return ImportStatus(
        observed_generation=generation,
        observed_restart_id=resource.spec.restart.id if observed.job is not None and resource.spec.restart
        else previous.observed_restart_id,
        observed_rerun_id=resource.spec.rerun.id if observed.job is not None and resource.spec.rerun.id
        else previous.observed_rerun_id,
        phase=outcome.phase,
        job_name=name,
        start_time=start,
        completion_time=completion,
        records_read=records_read,
        records_sent=sum(s.records_sent for s in shards),
        records_bad=sum(s.records_bad for s in shards),
        bytes_read=read,
        bytes_total=bytes_total,
        progress="100%" if outcome.phase is Phase.SUCCEEDED else percent(read, bytes_total),
        rows_per_second=_rate(outcome.phase, shards, records_read, start, completion),
        # A stalled shard's last rate says nothing about when it ends.
        eta=_eta(observed.checkpoints.values()) if outcome.phase is Phase.RUNNING and not stalled else None,
        last_checkpoint_time=from_epoch(max(checkpoint_times)) if checkpoint_times else None,
        source_etag=next((cp.source_etag for cp in observed.checkpoints.values() if cp.source_etag), None),
        stall_restarts=stall_restarts or None,
        objects=objects.counts if objects else None,
        objects_summary=objects.summary if objects else None,
        failed_objects=objects.failed or None if objects else None,
        slowest_shard=_slowest(shards) if objects and outcome.phase is Phase.RUNNING else None,
        shards=shards,
        conditions=_conditions(previous, outcome, generation, now, stalled,
                               _objects_failed(resource, objects) if objects else None),
    )


def invalid(previous: ImportStatus, generation: int, problem: str, now: datetime) -> ImportStatus:
    """The status of a resource whose spec the operator's model refuses (and the CRD let through)."""
    outcome = Outcome(Phase.FAILED, "InvalidSpec", f"{problem}; fix the spec")
    return previous.model_copy(update={"observed_generation": generation, "phase": outcome.phase,
                                       "conditions": _conditions(previous, outcome, generation, now)})


def transition(old: ImportStatus, new: ImportStatus) -> Event | None:
    """The Kubernetes Event to post when the phase or the reason behind it changed, or objects began to fail."""
    stalled = new.condition("Stalled")
    if (new.stall_restarts or 0) > (old.stall_restarts or 0) and stalled is not None:
        return Event("Warning", stalled.reason, stalled.message)
    event = _phase_event(old, new)
    failing, before = new.condition(OBJECTS_FAILED), old.condition(OBJECTS_FAILED)
    newly_failing = failing is not None and failing.status == "True" and (before is None or before.status != "True")
    # One event per pass: a failed run's own event says more; a routine one gives way.
    if newly_failing and failing is not None and (event is None or event.type != "Warning"):
        return Event("Warning", failing.reason, failing.message)
    return event


def _phase_event(old: ImportStatus, new: ImportStatus) -> Event | None:
    before, after = old.condition("Progressing"), new.condition("Progressing")
    if after is None or (old.phase == new.phase and before is not None and before.reason == after.reason):
        return None
    warning = new.phase is Phase.FAILED or after.reason not in ROUTINE
    return Event("Warning" if warning else "Normal", after.reason, after.message)


# -- the outcome -----------------------------------------------------------------------------------


def _outcome(resource: CsvKafkaImport, observed: Observed, shards: Sequence[ShardStatus],
             stalled: str | None, objects: Objects | None) -> Outcome:
    if observed.blocker is not None:
        blocker = observed.blocker
        return Outcome(Phase.FAILED if blocker.failed else Phase.PENDING, blocker.reason, blocker.message)
    job = observed.job
    if job is None:
        return Outcome(Phase.PENDING, "Creating", f"creating Job {job_name(resource)}")
    true = {c["type"]: c for c in job.get("status", {}).get("conditions") or [] if c.get("status") == "True"}
    if "Complete" in true or "SuccessCriteriaMet" in true:
        return Outcome(Phase.SUCCEEDED, "Completed", _summary(resource, shards, objects))
    if "Failed" in true or "FailureTarget" in true:
        return _failure(resource, true.get("Failed") or true["FailureTarget"], observed, stalled)
    if job.get("spec", {}).get("suspend"):
        rows = sum(s.records_read for s in shards)
        return Outcome(Phase.SUSPENDED, "Suspended",
                       f"suspended after {rows:,} rows; set spec.suspend to false "
                       f"(kubectl csvimport resume {resource.metadata.name}) to continue")
    return _in_progress(resource, observed, shards, stalled, objects)


def _in_progress(resource: CsvKafkaImport, observed: Observed, shards: Sequence[ShardStatus],
                 stalled: str | None, objects: Objects | None) -> Outcome:
    running = [p for p in observed.pods if p.get("status", {}).get("phase") == "Running"]
    said = reports(observed.pods, resource.spec.capacity)
    phase = Phase.RUNNING if running or any(s.state != "pending" for s in shards) else Phase.PENDING
    # A pod that cannot start needs someone to act, even while other shards run.
    stuck = [r for r in said if r.reason in STUCK or r.reason == "Unschedulable"]
    if stuck:
        return Outcome(phase, stuck[-1].reason, stuck[-1].message)
    if stalled is not None:
        return Outcome(phase, STALLED, stalled)
    latest = said[-1] if said else None
    last_checkpoint = max((cp.timestamp for cp in observed.checkpoints.values()), default=0)
    # A failure stays the headline until a checkpoint after it shows the retry got going.
    if running and (latest is None or not latest.failed or last_checkpoint > latest.at):
        rows = sum(s.records_read for s in shards)
        done = f", objects done {objects.summary}" if objects else ""
        return Outcome(phase, "Running", f"{len(running)} of {resource.spec.parallelism} worker pods running, "
                                         f"{rows:,} rows read from {resource.spec.source_text()}{done}")
    if shards and all(s.state == State.COMPLETED for s in shards):
        return Outcome(phase, "Completing", f"every shard is done; waiting for Job {job_name(resource)} to complete")
    if latest is not None:
        return Outcome(phase, latest.reason, latest.message + (" (retrying)" if latest.failed else ""))
    return Outcome(phase, "Starting", f"waiting for {resource.spec.parallelism} worker pod(s) of Job "
                                      f"{job_name(resource)} to start")


def _failure(resource: CsvKafkaImport, condition: Json, observed: Observed, stalled: str | None) -> Outcome:
    failures = [r for r in reports(observed.pods, resource.spec.capacity) if r.failed]
    name = resource.metadata.name
    if condition.get("reason") == "DeadlineExceeded":
        rows = sum(cp.last_line for cp in observed.checkpoints.values())
        # The Job's own deadline: the spec may have changed since.
        deadline = (observed.job or {}).get("spec", {}).get("activeDeadlineSeconds")
        return Outcome(Phase.FAILED, "DeadlineExceeded", (
            f"the import ran longer than spec.activeDeadlineSeconds ({deadline}s) and "
            f"was stopped after {rows:,} rows; raise spec.activeDeadlineSeconds (or remove it), then kubectl "
            f"csvimport restart {name} continues from the last checkpoint"))
    if stalled is not None and not failures:
        # The stalled pods were deleted, so they say nothing: their stalls used up the Job's retries.
        reason, message = STALLED, f"{stalled}; the Job's retries are used up"
    elif failures:
        reason, message = failures[-1].reason, failures[-1].message
    else:
        # The pods are gone (TTL, or deleted): the checkpoints and the Job tell what is left to tell.
        failed = next((cp for cp in observed.checkpoints.values() if cp.state is State.FAILED and cp.message), None)
        job_reason = (Reason.BAD_INPUT if condition.get("reason") == "PodFailurePolicy"
                      else condition.get("reason", "Failed"))
        reason = failed.reason or job_reason if failed is not None else job_reason
        message = failed.message if failed is not None and failed.message else (
            condition.get("message") or "the import's Job failed")
    then = (f"kubectl csvimport reset {name} imports the new version from the first row"
            if reason == Reason.SOURCE_CHANGED
            else f"once fixed, kubectl csvimport restart {name} continues from the last checkpoint")
    return Outcome(Phase.FAILED, reason, f"{message.rstrip('.')}. Then: {then}")


# -- stalls ----------------------------------------------------------------------------------------


def _tracked(resource: CsvKafkaImport, observed: Observed, now: datetime) -> tuple[ShardStatus, ...]:
    """The shards, each with when it last moved and, once stalled, the pod stopped for it."""
    previous = resource.status
    before = {s.index: s for s in previous.shards} if previous.job_name == job_name(resource) else {}
    shards = [stalls.track(before.get(i), _shard(i, job_id, observed.checkpoints.get(job_id)), now)
              for i, job_id in enumerate(resource.spec.shard_job_ids())]
    job = observed.job
    if job is not None and not job.get("spec", {}).get("suspend") and not job_ended(job):
        for stall in stalls.find(shards, observed.pods, resource.spec.stall_timeout_seconds, now):
            shards[stall.index] = shards[stall.index].model_copy(update={"stalled_pod": stall.pod})
    # The checkpoint's rate is from before the stall.
    return tuple(s.model_copy(update={"rows_per_second": 0}) if s.stalled_pod and s.rows_per_second else s
                 for s in shards)


def job_ended(job: Json) -> bool:
    """The Job succeeded or failed (or is about to: its target conditions are set)."""
    ended = ("Complete", "SuccessCriteriaMet", "Failed", "FailureTarget")
    return any(c.get("type") in ended and c.get("status") == "True"
               for c in job.get("status", {}).get("conditions") or [])


def _stall_message(resource: CsvKafkaImport, shards: Sequence[ShardStatus], restarts: int) -> str | None:
    stalled = [s for s in shards if s.stalled_pod]
    if not stalled:
        return None
    timeout = resource.spec.stall_timeout
    each = "; ".join(
        f"shard {s.index} made no progress for more than spec.stallTimeout ({timeout}) after row {s.records_read:,}"
        f" (last moved {s.last_progress_time}); its pod {s.stalled_pod} was stopped so that the Job's next pod "
        "resumes from the checkpoint" for s in stalled)
    per_shard = " per shard" if resource.spec.parallelism > 1 else ""
    return f"{each}. Stall restarts so far: {restarts}; the Job allows {RETRIES} failed pods{per_shard}"


# -- numbers ---------------------------------------------------------------------------------------


def _shard(index: int, job_id: str, cp: Checkpoint | None) -> ShardStatus:
    if cp is None:
        return ShardStatus(index=index, job_id=job_id, state="pending")
    return ShardStatus(
        index=index, job_id=job_id, state=cp.state.value,
        records_read=cp.last_line, records_sent=cp.total_sent, records_bad=cp.rows_bad,
        bytes_read=bytes_read(cp), bytes_total=cp.bytes_total,
        progress="100%" if cp.state is State.COMPLETED else percent(bytes_read(cp), cp.bytes_total),
        rows_per_second=round(cp.rows_per_second) if cp.state is State.RUNNING else None,
        last_checkpoint_time=from_epoch(cp.timestamp) if cp.timestamp else None,
        message=cp.message,
    )


def _summary(resource: CsvKafkaImport, shards: Sequence[ShardStatus], objects: Objects | None) -> str:
    read, sent, bad = (sum(getattr(s, f) for s in shards) for f in ("records_read", "records_sent", "records_bad"))
    done = f"; objects done {objects.summary}" if objects else ""
    return (f"imported {resource.spec.source_text()} into topic {resource.spec.sink.topic}: {read:,} rows read, "
            f"{sent:,} sent, {bad:,} bad{done}")


# -- many objects ----------------------------------------------------------------------------------


def _this_run(resource: CsvKafkaImport, checkpoints: Mapping[str, Checkpoint]) -> Mapping[str, Checkpoint]:
    """Leaves out the summary items of an earlier run, until the new run's workers take them over: they
    would show a new rerun as completed before it began."""
    rerun = resource.spec.rerun.id
    if resource.spec.source.single_object or rerun is None:
        # Without a rerun id every item is the initial run's (the CRD keeps an id from being removed).
        return checkpoints
    return {job_id: cp for job_id, cp in checkpoints.items() if cp.rerun_id == rerun}

_FAILED_LIST = TypeAdapter(list[FailedObject])


def _objects(resource: CsvKafkaImport, checkpoints: Mapping[str, Checkpoint]) -> Objects:
    """Totals of the shards' summary items; a shard not started yet leaves the total unknown. The worker
    counts a split object once, in the shard that imports its first piece."""
    summaries = [checkpoints.get(job_id) for job_id in resource.spec.shard_job_ids()]
    started = [cp for cp in summaries if cp is not None]
    totals = [cp.objects_total for cp in summaries if cp is not None]
    counts = ObjectCounts(
        total=None if len(started) < len(summaries) or None in totals else sum(t or 0 for t in totals),
        done=sum(cp.objects_done or 0 for cp in started),
        failed=sum(cp.objects_failed or 0 for cp in started),
        running=sum(1 for cp in started if cp.state is State.RUNNING and cp.current_object),
    )
    failed = [item for cp in started for item in _failed_list(cp)]
    return Objects(counts, tuple(failed[:MAX_FAILED_OBJECTS]))


def _failed_list(cp: Checkpoint) -> list[FailedObject]:
    if not cp.failed_objects:
        return []
    try:
        return _FAILED_LIST.validate_json(cp.failed_objects)
    except ValidationError:
        # Counted in objects_failed all the same; `kubectl csvimport objects` reads each object's own item.
        return []


def _objects_failed(resource: CsvKafkaImport, objects: Objects) -> tuple[bool, str, str]:
    count = objects.counts.failed
    if not count:
        return False, "NoObjectFailed", "no object has failed"
    skipped = f" and {'were' if count > 1 else 'was'} skipped (spec.onObjectError: skip)" if (
        resource.spec.on_object_error is ObjectErrorAction.SKIP) else ""
    first = (f"; first {objects.failed[0].uri}: {objects.failed[0].reason}"
             f"{': ' + objects.failed[0].message if objects.failed[0].message else ''}" if objects.failed else "")
    name = resource.metadata.name
    return True, OBJECTS_FAILED, (
        f"{count} object{'s' if count > 1 else ''} failed{skipped}{first}. kubectl csvimport objects {name} lists "
        "them; once fixed, a new spec.rerun.id imports them again")


def _slowest(shards: Sequence[ShardStatus]) -> SlowestShard | None:
    """The running shard with the largest share of its bytes left, while more than one shard is running."""
    running = [s for s in shards if s.state == State.RUNNING and s.bytes_read is not None and s.bytes_total]
    if len(running) < 2:
        return None
    slowest = min(running, key=lambda s: (s.bytes_read or 0) / (s.bytes_total or 1))
    return SlowestShard(index=slowest.index, progress=slowest.progress)


def _sum_known(values: Sequence[int | None]) -> int | None:
    return None if not values or any(v is None for v in values) else sum(v for v in values if v is not None)


def percent(done: int | None, total: int | None) -> str | None:
    if done is None or not total:
        return None
    return f"{min(100.0, 100 * done / total):.1f}%"


def _rate(phase: Phase, shards: Sequence[ShardStatus], rows: int, start: str | None, end: str | None) -> int | None:
    if phase is Phase.RUNNING:
        return sum(s.rows_per_second or 0 for s in shards)
    if phase is Phase.SUCCEEDED and start and end:
        # After the run, the average over it says more than the last checkpoint's momentary rate.
        seconds = epoch(end) - epoch(start)
        return round(rows / seconds) if seconds > 0 else None
    return None


def bytes_read(cp: Checkpoint) -> int | None:
    """Bytes of the shard's range (the whole object's data for one shard) behind the checkpoint."""
    if cp.byte_offset is None:
        return None
    return max(0, cp.byte_offset - (cp.range_start or 0))


def _eta(checkpoints: Iterable[Checkpoint]) -> str | None:
    """The slowest running shard's remaining bytes at its current pace."""
    remaining = []
    for cp in checkpoints:
        done = bytes_read(cp)
        if cp.state is not State.RUNNING or not (cp.bytes_total and done and cp.last_line):
            continue
        bytes_per_second = cp.rows_per_second * done / cp.last_line
        if bytes_per_second > 0:
            remaining.append(max(0, cp.bytes_total - done) / bytes_per_second)
    return duration(max(remaining)) if remaining else None


def duration(seconds: float) -> str:
    """Like kubectl's ages: 45s, 3m20s, 2h5m, 3d4h."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60}s" if s % 60 else f"{s // 60}m"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60}m" if s % 3600 // 60 else f"{s // 3600}h"
    return f"{s // 86400}d{s % 86400 // 3600}h" if s % 86400 // 3600 else f"{s // 86400}d"


# -- times and conditions --------------------------------------------------------------------------


def _completion_time(outcome: Outcome, observed: Observed, now: datetime) -> str | None:
    # A run that never started (blocked) has not completed: the operator keeps trying to start it.
    if observed.job is None or outcome.phase not in (Phase.SUCCEEDED, Phase.FAILED):
        return None
    if outcome.phase is Phase.SUCCEEDED and _job_time(observed.job, "completionTime"):
        return _job_time(observed.job, "completionTime")
    failed: Json = next((c for c in observed.job.get("status", {}).get("conditions") or []
                         if c.get("type") in ("Failed", "FailureTarget") and c.get("status") == "True"), {})
    return failed.get("lastTransitionTime") or rfc3339(now)


def _conditions(previous: ImportStatus, outcome: Outcome, generation: int, now: datetime,
                stalled: str | None = None,
                objects_failed: tuple[bool, str, str] | None = None) -> tuple[Condition, ...]:
    phase = outcome.phase

    def detail(applies: bool, otherwise: str) -> tuple[str, str]:
        return (outcome.reason, outcome.message) if applies else (phase.value, otherwise)

    wanted = (
        ("Progressing", phase in ACTIVE, (outcome.reason, outcome.message)),
        ("Succeeded", phase is Phase.SUCCEEDED, detail(phase is Phase.SUCCEEDED, "the import has not finished")),
        ("Failed", phase is Phase.FAILED, detail(phase is Phase.FAILED, "the import has not failed")),
        # Only once an import has stalled: most never do, and their status stays as short.
        *((("Stalled", phase in ACTIVE and stalled is not None, _stall_detail(phase, stalled)),)
          if stalled is not None or previous.condition("Stalled") is not None else ()),
        # Likewise only once an object has failed.
        *(((OBJECTS_FAILED, objects_failed[0], objects_failed[1:]),)
          if objects_failed is not None and (objects_failed[0] or previous.condition(OBJECTS_FAILED) is not None)
          else ()),
    )
    conditions = []
    for type_, holds, (reason, message) in wanted:
        status = "True" if holds else "False"
        before = previous.condition(type_)
        since = before.last_transition_time if before is not None and before.status == status else rfc3339(now)
        conditions.append(Condition(type=type_, status=status, reason=reason, message=message,
                                    last_transition_time=since, observed_generation=generation))
    return tuple(conditions)


def _stall_detail(phase: Phase, stalled: str | None) -> tuple[str, str]:
    if stalled is not None and phase in ACTIVE:
        return STALLED, stalled
    if phase in ACTIVE:
        return "ProgressResumed", "every running shard's checkpoint moves again"
    return phase.value, "the import is not running"


def _job_time(job: Json | None, key: str) -> str | None:
    return None if job is None else job.get("status", {}).get(key)
