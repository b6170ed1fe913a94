"""A multi-object import: this worker's share of the plan, one object (or piece of one) at a time.

    ObjectsRun  claims the shard's summary item (job#i/N: its lease, totals and failed objects), makes
                or reads the plan, imports its units with one Importer each over one shared producer,
                writes each object's receipt once all of it is delivered, and the manifest at the end.

Each object (or piece) keeps its own checkpoint item (checkpoint.object_job_id), so a restarted
worker skips what it completed and resumes what it had begun; the other shards are not touched.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from csvkafka_worker import positions
from csvkafka_worker.checkpoint import Checkpoint, State, manifest_id, object_job_id, receipt_id, shard_job_id
from csvkafka_worker.engine import choose
from csvkafka_worker.errors import BadInput, Reason, StoppedWhileWaiting, WorkerError, stopping_on_failure
from csvkafka_worker.importer import Checkpoints, Hooks, Importer, Outcome, Stream, Target, open_sink, rate_limit
from csvkafka_worker.listing import list_objects
from csvkafka_worker.metrics import Metrics
from csvkafka_worker.options import RunOptions
from csvkafka_worker.plan import Action, ObjectEntry, Unit, assign, decide
from csvkafka_worker.planstore import PlanStore
from csvkafka_worker.progress import Progress
from csvkafka_worker.receipts import Manifest, Receipt, write_manifest
from csvkafka_worker.records import Dialect
from csvkafka_worker.retry import Backoff, Retrier, Service
from csvkafka_worker.sink import KafkaSink
from csvkafka_worker.spec import ImportSpec, ObjectErrorAction
from csvkafka_worker.store import CheckpointStore, ConditionFailed
from csvkafka_worker.watermark import Counts, Position

INITIAL_RUN = "initial"
# Failures of one object (its content, its header, its version): with onObjectError skip, the others go on.
OBJECT_REASONS = (Reason.BAD_INPUT, Reason.SOURCE_CHANGED, Reason.SOURCE_CORRUPT, Reason.SOURCE_NOT_FOUND,
                  Reason.SOURCE_ACCESS_DENIED, Reason.INVALID_CONFIGURATION)
# The failed objects a summary item lists (the count is exact).
FAILED_LISTED = 20
# How long a worker waits for another one to finish listing the source.
PLAN_WAIT_SECONDS = 900.0


@dataclass
class Tally:
    """What this shard's finished units add up to."""

    counts: Counts = field(default_factory=Counts)
    rows: int = 0
    bytes_done: int = 0
    objects_done: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    failed_count: int = 0

    def add(self, unit: Unit, final: Checkpoint) -> None:
        self.counts.add(final.counts())
        self.rows += final.last_line
        self.bytes_done += unit.nominal_end - unit.nominal_start

    def skip(self, unit: Unit, done: Checkpoint | None) -> None:
        """A unit a previous pass completed: its object counts as done (a split object by its first piece's
        shard, which after a restart may differ from the one that wrote its receipt); `done`, its item when
        this run completed it (a restarted worker), adds its rows to this run's."""
        if done is not None:
            self.add(unit, done)
        else:
            self.bytes_done += unit.nominal_end - unit.nominal_start
        self.objects_done += unit.piece == 0

    def fail(self, unit: Unit, error: WorkerError) -> None:
        self.failed_count += 1
        self.bytes_done += unit.nominal_end - unit.nominal_start
        if len(self.failed) < FAILED_LISTED:
            self.failed.append({"uri": unit.entry.uri, "reason": str(error.reason), "message": str(error)})


class ObjectsRun:
    def __init__(self, spec: ImportSpec, run: RunOptions, *, s3: Any, dynamodb: Any, owner: str,
                 stop: threading.Event, progress: Progress | None = None,
                 positions_topic: str = positions.DEFAULT_TOPIC) -> None:
        self.spec = spec
        self.run_options = run
        self.s3 = s3
        self.dynamodb = dynamodb
        self.owner = owner
        self.stop = stop
        self.positions_topic = positions_topic
        self.job_id = shard_job_id(spec.job_id, run.shard_index, run.shard_count) if run.shard_count > 1 \
            else f"{spec.job_id}#0/1"
        self.rerun_id = spec.rerun.id or INITIAL_RUN
        self.metrics = Metrics(self.job_id)
        self.progress = progress or Progress(self.job_id, run.progress)
        self.dynamodb_retrier = Retrier(Service.DYNAMODB, Backoff(spec.retry.dynamodb_seconds), self.metrics)
        self.s3_retrier = Retrier(Service.S3, Backoff(spec.retry.s3_seconds), self.metrics)
        self.store = CheckpointStore(dynamodb, spec.checkpoint.table, self.job_id, owner=owner,
                                     lease_seconds=spec.checkpoint.lease_seconds, retrier=self.dynamodb_retrier,
                                     sleep=self._wait_unless_stopped)
        self.summary = Checkpoints(self.store, Hooks())
        self.plans = PlanStore(dynamodb, spec.checkpoint.table, spec.job_id, self.dynamodb_retrier)
        self.engine, _ = choose(run.engine, Dialect.of(spec.source.csv), spec.source.csv.encoding)
        self.sink: KafkaSink | None = None
        self.rate = rate_limit(spec, run, stop)
        self.tally = Tally()
        self._last_summary = 0.0
        # Receipts produced with their object's last rows, kept in DynamoDB once the object's checkpoint is final.
        self._receipts: dict[str, Receipt] = {}
        # Units this run completed before a restart, skipped now: their rows still count in the summary.
        self._done_this_run: dict[str, Checkpoint] = {}

    def _wait_unless_stopped(self, seconds: float) -> None:
        if self.stop.wait(seconds):
            raise StoppedWhileWaiting(f"stopped while waiting for job {self.job_id!r}'s lease; nothing was imported",
                                      reason=Reason.INTERRUPTED)

    def close(self) -> None:
        if self.sink is not None:
            self.sink.close()
            self.sink = None

    # -- the whole run ---------------------------------------------------------------------------

    def run(self) -> Outcome:
        self.metrics.serve(self.run_options.metrics_port)
        self.summary.claim()
        return stopping_on_failure(self._run_claimed, self._release_failed)

    def _release_failed(self, error: WorkerError) -> None:
        if self.sink is not None:
            self.sink.abort()
        if self.summary.held:
            with contextlib.suppress(WorkerError):
                self.summary.release(State.FAILED, message=str(error), reason=error.reason, **self._totals())

    def _run_claimed(self) -> Outcome:
        header = self.plans.ensure(self.rerun_id, self._list, PLAN_WAIT_SECONDS)
        # The units are streamed from the plan's pages twice (memory stays bounded whatever the number of
        # objects): once to count them and find the pieces of split objects, once to import.
        objects_total = bytes_total = units = 0
        pieces: list[Unit] = []
        for unit in self._units(header.total_bytes):
            units += 1
            objects_total += unit.piece == 0
            bytes_total += unit.nominal_end - unit.nominal_start
            if unit.pieces > 1:
                pieces.append(unit)  # at most the first and last of a shard
        self.summary.save(objects_total=objects_total, bytes_total=bytes_total, range_start=0, rerun_id=self.rerun_id,
                          started_at=self.summary.current.started_at or int(time.time()), state=State.RUNNING,
                          message=None, reason=None, **self._totals())
        self.progress.event("plan", objects=header.objects, bytes=header.total_bytes, units=units,
                            rerun=self.rerun_id)
        # A split object's pieces publish their scans before any import, so that no shard waits for
        # another one to reach its piece.
        scanned = {self._unit_id(unit) for unit in pieces if self._prepare(unit)}
        for unit in pieces:
            if self._unit_id(unit) in scanned and not self.stop.is_set():
                self._guarded(unit, lambda importer: importer.publish_scan())
        for number, unit in enumerate(self._units(header.total_bytes), 1):
            if self.stop.is_set():
                return self._finish(State.INTERRUPTED)
            wanted = self._unit_id(unit) in scanned if unit.pieces > 1 else self._prepare(unit)
            if not wanted:
                self.tally.skip(unit, self._done_this_run.pop(self._unit_id(unit), None))
                continue
            self.summary.current = self.summary.current.advanced(
                current_object=unit.entry.uri, message=f"unit {number}/{units}: {unit.entry.uri}")
            outcome = self._guarded(unit, lambda importer: importer.run())
            if outcome is None:
                continue
            if outcome.state is State.INTERRUPTED:
                return self._finish(State.INTERRUPTED)
            self.tally.add(unit, outcome.checkpoint)
            receipt = self._receipts.pop(unit.entry.uri, None)
            if receipt is not None:
                self._keep_receipt(unit.entry, receipt)
            if unit.pieces == 1 or self._claim_receipt(unit):
                self.tally.objects_done += 1
            self._save_summary(force=True)
        outcome = self._finish(State.COMPLETED)
        self._write_manifest()
        return outcome

    def _units(self, total_bytes: int) -> Iterator[Unit]:
        return assign(self.plans.entries(), total_bytes, self.run_options.shard_index, self.run_options.shard_count,
                      min_piece=self.run_options.min_piece_bytes)

    def _open_sink(self) -> KafkaSink:
        if self.sink is None:
            self.sink = open_sink(self.spec, self.engine, self.job_id, self.metrics)
        return self.sink

    # -- units -----------------------------------------------------------------------------------

    def _prepare(self, unit: Unit) -> bool:
        """Whether this run imports the unit; resets its checkpoint first when the rerun says so."""
        unit_id = self._unit_id(unit)
        prior = self.store.peek(unit_id)
        same_run = prior is not None and prior.rerun_id == self.rerun_id
        action = decide(self.spec.rerun.mode, unit.entry, (prior.source_etag, prior.state) if prior else None,
                        same_run=same_run)
        if action is Action.SKIP:
            if same_run and prior is not None:
                self._done_this_run[unit_id] = prior
            return False
        if action is Action.REIMPORT or prior is None or not same_run:
            # A fresh pass (a new run id) whose item records the rerun it belongs to; a live owner is
            # impossible here: only this shard imports this unit.
            fresh = Checkpoint(job_id=unit_id, rerun_id=self.rerun_id)
            if action is not Action.REIMPORT and prior is not None:
                fresh = prior.advanced(rerun_id=self.rerun_id, owner=None, lease_expires=None)
            self.store.put_unguarded(fresh)
        return True

    def _unit_id(self, unit: Unit) -> str:
        return shard_job_id(self._object_id(unit.entry), unit.piece, unit.pieces)

    def _object_id(self, entry: ObjectEntry) -> str:
        return object_job_id(self.spec.job_id, entry.bucket, entry.key)

    def _importer(self, unit: Unit) -> Importer:
        target = Target(unit.entry.bucket, unit.entry.key, self._object_id(unit.entry), unit.piece, unit.pieces,
                        (unit.nominal_start, unit.nominal_end) if unit.pieces > 1 else None)
        self.metrics.next_object()
        # Each object has its own progress (its rows, its rate); the run's own lines are this run's.
        return Importer(self.spec, self.run_options, s3=self.s3, dynamodb=self.dynamodb, owner=self.owner,
                        stop=self.stop, positions_topic=self.positions_topic, target=target,
                        sink=self._open_sink(), metrics=self.metrics, hooks=_UnitHooks(self, unit), rate=self.rate)

    def _guarded(self, unit: Unit, step: Any) -> Outcome | None:
        """Runs a step of a unit's import; an object's own failure under onObjectError skip is reported and
        ends in None, any other failure stops the run."""
        try:
            result: Outcome | None = step(self._importer(unit))
            return result
        except StoppedWhileWaiting:
            raise
        except WorkerError as error:
            if not (isinstance(error, BadInput) and error.reason in OBJECT_REASONS):
                raise
            if self.spec.on_object_error is ObjectErrorAction.FAIL:
                raise BadInput(f"object {unit.entry.uri} failed: {error}; the import stops (onObjectError: fail). "
                               "Fix or remove the object, or set onObjectError: skip to import the others",
                               reason=error.reason) from error
            self.tally.fail(unit, error)
            self.progress.event("object-failed", level="warning", object=unit.entry.uri, reason=error.reason,
                                message=str(error))
            if self.sink is not None:
                self.sink.abort()
            self._save_summary(force=True)
            return None

    # -- receipts and the manifest ---------------------------------------------------------------

    def completing(self, stream: Stream, unit: Unit, position: Position, counts: Counts) -> None:
        """A whole object's last rows are acknowledged: its receipt goes out with them."""
        if unit.pieces > 1:
            return
        receipt = self._receipt(unit.entry, stream.span.start, position.offset, counts)
        if self.spec.receipts.topic:
            stream.sink.produce(self.spec.receipts.topic, unit.entry.uri.encode(), receipt.encode())
        self._receipts[unit.entry.uri] = receipt

    def _receipt(self, entry: ObjectEntry, start: int, end: int, counts: Counts) -> Receipt:
        return Receipt.of(job_id=self.spec.job_id, run_id=self.rerun_id, uri=entry.uri, etag=entry.etag,
                          byte_range=(start, end), counts=counts, completed_at=datetime.now(UTC))

    def _keep_receipt(self, entry: ObjectEntry, receipt: Receipt) -> None:
        """The receipt, for the manifest, once the object's checkpoint says it is complete."""
        self.store.put_unguarded(Checkpoint(job_id=receipt_id(self._object_id(entry)), state=State.COMPLETED,
                                            message=receipt.encode().decode(), rerun_id=self.rerun_id))

    def _claim_receipt(self, unit: Unit) -> bool:
        """A piece completed: when every piece of its object is, the first worker to see it writes the
        object's receipt (a conditional put decides which). True if this one did."""
        base = self._object_id(unit.entry)
        pieces = [self.store.peek(shard_job_id(base, j, unit.pieces)) for j in range(unit.pieces)]
        finals = [p for p in pieces if p is not None and p.state is State.COMPLETED and p.rerun_id == self.rerun_id]
        if len(finals) < unit.pieces:
            return False
        counts = Counts()
        for final in finals:
            counts.add(final.counts())
        receipt = self._receipt(unit.entry, min(p.range_start or 0 for p in finals),
                                max(p.byte_offset or 0 for p in finals), counts)
        try:
            self.store.put_new(Checkpoint(job_id=receipt_id(base), state=State.COMPLETED,
                                          message=receipt.encode().decode(), rerun_id=self.rerun_id),
                               replace_unless=self.rerun_id)
        except ConditionFailed:
            return False
        if self.spec.receipts.topic and self.sink is not None:
            self.sink.deliver(self.spec.receipts.topic, unit.entry.uri.encode(), receipt.encode())
        return True

    def _write_manifest(self) -> None:
        """The last shard to finish writes the manifest of every receipt (a conditional put decides which)."""
        uri = self.spec.receipts.manifest_uri
        if uri is None:
            return
        count = self.run_options.shard_count
        shards = [self.store.peek(f"{self.spec.job_id}#{i}/{count}") for i in range(count)]
        if any(s is None or s.state is not State.COMPLETED or s.rerun_id != self.rerun_id for s in shards):
            return
        try:
            self.store.put_new(Checkpoint(job_id=manifest_id(self.spec.job_id), state=State.COMPLETED,
                                          message=uri, rerun_id=self.rerun_id), replace_unless=self.rerun_id)
        except ConditionFailed:
            return
        receipts: list[Receipt] = []
        for entry in self.plans.entries():
            item = self.store.peek(receipt_id(self._object_id(entry)))
            if item is not None and item.message:
                receipts.append(Receipt.decode(item.message.encode()))
        manifest = Manifest(import_name=self.spec.job_id, job_id=self.spec.job_id, run_id=self.rerun_id,
                            generated_at=datetime.now(UTC), receipts=tuple(receipts))
        write_manifest(self.s3, uri, manifest, self.s3_retrier)
        self.progress.event("manifest", uri=uri, receipts=len(receipts))

    # -- the summary item ------------------------------------------------------------------------

    def _totals(self) -> dict[str, Any]:
        tally = self.tally
        return {"last_line": tally.rows, "total_sent": tally.counts.sent,
                "rows_dead_lettered": tally.counts.dead_lettered, "rows_skipped": tally.counts.skipped,
                "byte_offset": tally.bytes_done, "objects_done": tally.objects_done,
                "objects_failed": tally.failed_count,
                "failed_objects": orjson.dumps(tally.failed).decode() if tally.failed else None}

    def live(self, unit: Unit, checkpoint: Checkpoint) -> None:
        """An object's checkpoint moved: the summary follows (and its lease is renewed) every everySeconds."""
        totals = self._totals()
        totals["last_line"] += checkpoint.last_line
        totals["total_sent"] += checkpoint.total_sent
        totals["rows_dead_lettered"] += checkpoint.rows_dead_lettered
        totals["rows_skipped"] += checkpoint.rows_skipped
        if checkpoint.byte_offset is not None and checkpoint.range_start is not None and unit.pieces == 1 \
                and checkpoint.bytes_total is not None:
            totals["byte_offset"] += checkpoint.byte_offset - checkpoint.range_start
        self._save_summary(force=False, **totals)

    def _save_summary(self, *, force: bool, **totals: Any) -> None:
        now = time.monotonic()
        if not force and now - self._last_summary < self.spec.checkpoint.every_seconds:
            return
        self._last_summary = now
        self.summary.save(**(totals or self._totals()))

    def _finish(self, state: State) -> Outcome:
        failed = self.tally.failed_count
        message = None
        if failed:
            first = self.tally.failed[0]
            message = f"{failed} object(s) failed and were skipped; first: {first['uri']}: {first['message']}"
        final = self.summary.release(state, message, current_object=None, **self._totals())
        self.progress.event("finish", state=state.value, objects_done=self.tally.objects_done,
                            objects_failed=failed, rows_sent=self.tally.counts.sent,
                            retries=dict(self.metrics.retries), throttled=dict(self.metrics.throttles))
        return Outcome(state, final)

    def _list(self) -> Iterator[ObjectEntry]:
        return list_objects(self.s3, self.spec.source, self.s3_retrier)


class _UnitHooks(Hooks):
    def __init__(self, run: ObjectsRun, unit: Unit) -> None:
        self.run = run
        self.unit = unit

    def checkpointed(self, checkpoint: Checkpoint) -> None:
        self.run.live(self.unit, checkpoint)

    def completing(self, stream: Stream, position: Position, counts: Counts) -> None:
        self.run.completing(stream, self.unit, position, counts)
