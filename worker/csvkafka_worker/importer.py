"""One import, start to end: claim the checkpoint, plan, stream blocks to Kafka, checkpoint, finish.

The imperative shell around the pure parts (records, encode, triage, watermark, checkpoint policy):
S3, Kafka and DynamoDB are reached only through source.py, sink.py and store.py, and the per-row
work is the engine's (engine.py: the native core, or the Python path).

    Importer     what to import and from where: the object, its start, the shard, the engine
    Checkpoints  the one owner of the job's checkpoint item (claim, save, release)
    Stream       one pass over the bytes: blocks → engine → Kafka, the watermark, checkpoints
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

from csvkafka_worker import decompress, entry, positions, shards
from csvkafka_worker.checkpoint import Checkpoint, CheckpointPolicy, State, counted, shard_job_id
from csvkafka_worker.encode import BadRecord, RecordBlock, describe
from csvkafka_worker.engine import RECORD_OVERHEAD, Engine, SendPlan, choose, first_boundary
from csvkafka_worker.errors import (
    BadInput,
    Infrastructure,
    Reason,
    StoppedWhileWaiting,
    WorkerError,
    stopping_on_failure,
)
from csvkafka_worker.kafka_config import transactional_id
from csvkafka_worker.metrics import Metrics, Totals
from csvkafka_worker.options import RunOptions
from csvkafka_worker.preamble import Preamble, read_preamble
from csvkafka_worker.progress import Progress, Snapshot
from csvkafka_worker.ratelimit import RateLimit, per_shard
from csvkafka_worker.records import Dialect, RecordTooLarge
from csvkafka_worker.retry import Backoff, Retrier, Service
from csvkafka_worker.seekpoints import SeekIndex, SeekPoint
from csvkafka_worker.sink import KafkaSink
from csvkafka_worker.source import ObjectInfo, RangedReader, ReadInterrupted, SourceChanged, head
from csvkafka_worker.spec import BadRowAction, Compression, Delivery, ImportSpec, ValueFormat
from csvkafka_worker.store import CheckpointStore
from csvkafka_worker.triage import Triage, triage
from csvkafka_worker.watermark import Counts, DeliveryWatermark, Position

# Bytes handed to the record splitter at a time (S3 is read in larger ranges): a block's records,
# values and acknowledgements are alive at once, so this bounds the worker's memory.
BLOCK_BYTES = 1024 * 1024
# The end of a range that runs to the end of the object, whatever its (decompressed) size.
_UNBOUNDED = 2**63
# Why a read of the source may stop in the middle of an import.
_SOURCE_STOPPED = (Reason.SOURCE_CHANGED, Reason.SOURCE_NOT_FOUND, Reason.SOURCE_ACCESS_DENIED, Reason.S3_UNAVAILABLE)


@dataclass(frozen=True)
class Outcome:
    state: State
    checkpoint: Checkpoint


@dataclass(frozen=True)
class Target:
    """What one Importer imports: an object, or piece `index` of `count` of it (its checkpoint item is
    shard_job_id(base_job_id, index, count)); `nominal` is the piece's nominal byte range (moved to record
    boundaries by shards.py), an equal part when None."""

    bucket: str
    key: str
    base_job_id: str
    index: int = 0
    count: int = 1
    nominal: tuple[int, int] | None = None

    @property
    def job_id(self) -> str:
        return shard_job_id(self.base_job_id, self.index, self.count)

    @classmethod
    def of(cls, spec: ImportSpec, run: RunOptions) -> Target:
        """The one object a single-object spec names, or this worker's shard of it."""
        return cls(spec.source.bucket, spec.source.key, spec.job_id, run.shard_index, run.shard_count)


class Hooks:
    """What a multi-object run adds to an object's import; the defaults do nothing."""

    def checkpointed(self, checkpoint: Checkpoint) -> None:
        """Called after each save of the object's checkpoint (the run renews its own lease with it)."""

    def completing(self, stream: Stream, position: Position, counts: Counts) -> None:
        """Called once every row is acknowledged, before the object's checkpoint is released completed (in
        exactly-once mode inside the object's last transaction)."""


class Checkpoints:
    """The job's checkpoint item: claimed once, then advanced only through here."""

    def __init__(self, store: CheckpointStore, hooks: Hooks) -> None:
        self.store = store
        self.hooks = hooks
        self.current = Checkpoint(job_id=store.job_id)

    def claim(self) -> Checkpoint:
        self.current = self.store.claim()
        return self.current

    def save(self, **changes: Any) -> Checkpoint:
        self.current = self.store.save(self.current.advanced(**changes))
        self.hooks.checkpointed(self.current)
        return self.current

    def release(self, state: State, message: str | None = None, reason: str | None = None, **changes: Any
                ) -> Checkpoint:
        self.current = self.store.release(self.current.advanced(**changes), state, message, reason)
        return self.current

    @property
    def held(self) -> bool:
        return self.current.owner is not None


class Importer:
    def __init__(self, spec: ImportSpec, run: RunOptions, *, s3: Any, dynamodb: Any, owner: str,
                 stop: threading.Event, progress: Progress | None = None,
                 positions_topic: str = positions.DEFAULT_TOPIC, target: Target | None = None,
                 sink: KafkaSink | None = None, metrics: Metrics | None = None, hooks: Hooks | None = None,
                 rate: RateLimit | None = None) -> None:
        self.spec = spec
        self.run_options = run
        self.s3 = s3
        self.stop = stop
        self.target = target or Target.of(spec, run)
        self.job_id = self.target.job_id
        self.metrics = metrics or Metrics(self.job_id)
        self.hooks = hooks or Hooks()
        self.rate = rate or rate_limit(spec, run, stop)
        # A sink handed in is the multi-object run's, shared by its objects: it is not this importer's to close.
        self._owns_sink = sink is None
        self.s3_retrier = Retrier(Service.S3, Backoff(spec.retry.s3_seconds), self.metrics)
        store = CheckpointStore(dynamodb, spec.checkpoint.table, self.job_id, owner=owner,
                                lease_seconds=spec.checkpoint.lease_seconds,
                                retrier=Retrier(Service.DYNAMODB, Backoff(spec.retry.dynamodb_seconds), self.metrics),
                                sleep=self._wait_unless_stopped)
        self.checkpoints = Checkpoints(store, self.hooks)
        self.progress = progress or Progress(self.job_id, run.progress)
        self.positions_topic = positions_topic
        self.exactly_once = spec.delivery is Delivery.EXACTLY_ONCE
        self.dialect = Dialect.of(spec.source.csv)
        self.engine, self._engine_why = choose(run.engine, self.dialect, spec.source.csv.encoding)
        self.sink: KafkaSink | None = sink
        self.position_writer: positions.PositionWriter | None = None
        # Seek points the read passes, for checkpoints; the object's bytes fetched by the streaming pass.
        self.seek_index = SeekIndex()
        self.bytes_fetched = 0
        self._waiting_logged = False

    def _wait_unless_stopped(self, seconds: float) -> None:
        """Sleeps while the job's lease is held by another worker; a SIGTERM ends the wait at once."""
        if not self._waiting_logged:
            self._waiting_logged = True
            self.progress.event("waiting-for-lease", lease_seconds=self.spec.checkpoint.lease_seconds)
        if self.stop.wait(seconds):
            raise StoppedWhileWaiting(f"stopped while waiting for job {self.job_id!r}'s lease; nothing was imported",
                                      reason=Reason.INTERRUPTED)

    # -- the whole run ---------------------------------------------------------------------------

    def run(self) -> Outcome:
        if self._owns_sink:
            self.metrics.serve(self.run_options.metrics_port)
        info = head(self.s3, self.target.bucket, self.target.key, self.s3_retrier)
        self.checkpoints.claim()
        return stopping_on_failure(lambda: self._run_claimed(info), self._stop_failed)

    def close(self) -> None:
        """Destroys the Kafka producer (if any, and its own) now rather than at exit."""
        if self.sink is not None and self._owns_sink:
            self.sink.close()
            self.sink = None

    def _stop_failed(self, error: WorkerError) -> None:
        if self.sink is not None:
            self.sink.abort()
        if not self.checkpoints.held:
            return  # already released by a clean stop
        # If the lease was lost or DynamoDB is gone, the original error is still the one to report.
        with contextlib.suppress(WorkerError):
            self.checkpoints.release(State.FAILED, message=str(error), reason=error.reason)

    def _run_claimed(self, info: ObjectInfo) -> Outcome:
        checkpoint = self.checkpoints.current
        if checkpoint.state is State.COMPLETED and checkpoint.source_etag in (None, info.etag):
            self.progress.event("already-complete", row=checkpoint.last_line, sent=checkpoint.total_sent)
            return Outcome(State.COMPLETED, self.checkpoints.release(State.COMPLETED, checkpoint.message))
        # A pass that began (a run id) may have delivered rows of the old version: never continue it
        # on the new one.
        if checkpoint.source_etag not in (None, info.etag) and (checkpoint.last_line > 0 or checkpoint.run_id):
            raise SourceChanged(info.uri, checkpoint.source_etag, info.etag)
        self._check_same_version_as_other_shards(info)

        compression, preamble = self._read_start(info)
        shards.check_shardable(self.target.count, compression is not Compression.NONE)
        if self.sink is None:
            self.sink = open_sink(self.spec, self.engine, self.job_id, self.metrics)

        # Exactly-once: where this job's committed records end, read from its own positions partition from
        # its mark on (a pass not begun yet has none to find).
        found: positions.Lookup | None = None
        if self.exactly_once:
            budget = self.spec.retry.kafka_seconds
            positions.ensure_topic(self.spec.sink, self.positions_topic, self._client_id(), budget)
            found = positions.lookup(self.spec.sink, self.positions_topic, self.job_id, self._client_id(), budget,
                                     hint=positions.Mark.decode(checkpoint.positions_mark),
                                     new_run=checkpoint.run_id is None)
            self.position_writer = positions.PositionWriter(self.positions_topic, self.job_id, found.mark)
        # The run id is stored before anything is produced, so that a crash at any later point
        # resumes this same pass.
        self.checkpoints.save(source_uri=info.uri, source_etag=info.etag, state=State.RUNNING, message=None,
                              run_id=checkpoint.run_id or uuid.uuid4().hex,
                              started_at=checkpoint.started_at or int(time.time()),
                              positions_mark=found.mark.encode() if found else checkpoint.positions_mark)
        span = self._shard_range(info, preamble)
        start, counts = self._start_position(info, compression, span)
        if found is not None and found.record is not None and found.record.run_id == self.checkpoints.current.run_id:
            start, counts = found.record.position, found.record.counts

        # Progress is (byte_offset - range_start) / bytes_total, for a whole object and for a shard alike.
        self.checkpoints.current = self.checkpoints.current.advanced(
            range_start=span.start,
            bytes_total=min(span.end, info.size) - span.start if compression is Compression.NONE else None)
        point = self._seek_point(checkpoint, info, start.offset)
        read_from = entry.description(compression, point, start.offset, start.row > 0)
        if compression is not Compression.NONE and point is decompress.START and start.row > 0:
            # Saved with the next checkpoint: the operator shows a running shard's message in the status.
            self.checkpoints.current = self.checkpoints.current.advanced(message=read_from)
        self.progress.event("start", source=info.uri, etag=info.etag, size=info.size, compression=compression.value,
                            row=start.row, offset=start.offset, delivery=self.spec.delivery.value,
                            engine=self.engine.name, engine_reason=self._engine_why, read_from=read_from)
        stream = Stream(self, info, self.sink, preamble, span, start, counts)
        return stream.run(self._chunks(info, compression, start.offset, span.end, point))

    def _check_same_version_as_other_shards(self, info: ObjectInfo) -> None:
        """The shards of one object read one version of it: another shard that pinned another ETag means
        the object was overwritten between the shards' starts."""
        index, count = self.target.index, self.target.count
        for other in (i for i in range(count) if i != index):
            peer = self.checkpoints.store.peek(shard_job_id(self.target.base_job_id, other, count))
            if peer is not None and peer.source_etag not in (None, info.etag):
                raise SourceChanged(info.uri, peer.source_etag, info.etag)

    # -- pieces ----------------------------------------------------------------------------------

    def _client_id(self) -> str:
        return client_id(self.job_id)

    def _chunks(self, info: ObjectInfo, compression: Compression, offset: int, end: int,
                point: SeekPoint = decompress.START) -> Iterator[bytes]:
        """The (decompressed) stream from `offset` to `end`; a compressed one from `point` at or below `offset`."""
        reader = RangedReader(self.s3, info, self.s3_retrier, range_bytes=self.run_options.range_bytes,
                              interrupt=self.stop)
        if compression is Compression.NONE:
            return _pieces(reader.chunks(offset, end), BLOCK_BYTES)
        raw = entry.entered(lambda byte: self._counted(reader.chunks(byte)), info.size, compression, info.uri,
                            point, self.seek_index)
        return _pieces(decompress.skip(raw, offset - point.offset), BLOCK_BYTES)

    def _counted(self, chunks: Iterator[bytes]) -> Generator[bytes, None, None]:
        for chunk in chunks:
            self.bytes_fetched += len(chunk)
            yield chunk

    def _seek_point(self, claimed: Checkpoint, info: ObjectInfo, offset: int) -> SeekPoint:
        """The claimed checkpoint's seek point if it is of this object and at or below `offset`, else the start."""
        point = SeekPoint.decode(claimed.seek_point) if claimed.seek_point else None
        if point is None or claimed.source_etag != info.etag or point.offset > offset:
            return decompress.START
        return point

    def _read_start(self, info: ObjectInfo) -> tuple[Compression, Preamble]:
        """The object's compression (from its first bytes) and its preamble, from one read of its start."""
        raw = RangedReader(self.s3, info, self.s3_retrier, range_bytes=256 * 1024, piece_bytes=64 * 1024,
                           prefetch=1).chunks(0)
        first = next(raw, b"")
        compression = decompress.detect(info.key, first, self.spec.source.compression)
        stream = decompress.decompressed(itertools.chain([first], raw), compression, info.uri)
        prefix = b""
        for chunk in stream:
            prefix += chunk
            found = read_preamble(prefix, self.spec.source.csv, self.spec.sink.key_column, at_eof=False)
            if found is not None:
                return compression, found
        if not prefix:
            # An empty object (an export with nothing in it) has no rows to send and nothing to check.
            return compression, Preamble((), 0)
        found = read_preamble(prefix, self.spec.source.csv, self.spec.sink.key_column, at_eof=True)
        assert found is not None
        return compression, found

    def _shard_range(self, info: ObjectInfo, preamble: Preamble) -> shards.ShardRange:
        """The whole object after the header, or this shard's record-aligned part of it."""
        cp, count = self.checkpoints.current, self.target.count
        if count == 1:
            return shards.ShardRange(preamble.data_start, _UNBOUNDED)
        if cp.range_start is not None and cp.range_end is not None:
            return shards.ShardRange(cp.range_start, cp.range_end)
        planner = self._planner(info)
        span = planner.plan(preamble.data_start, info.size, cp)
        self.checkpoints.save(range_start=span.start, range_end=span.end)
        self.progress.event("shard-planned", shard=f"{self.target.index}/{count}", range_start=span.start,
                            range_end=span.end)
        return span

    def _planner(self, info: ObjectInfo) -> shards.ShardPlanner:
        scanner = RangedReader(self.s3, info, self.s3_retrier, range_bytes=16 * 1024 * 1024, prefetch=2)
        max_record = self.spec.source.csv.max_record_bytes

        def boundary(chunks: Iterator[bytes], state: Any, remaining: int) -> int:
            try:
                return first_boundary(self.engine, chunks, state, remaining, max_record)
            except RecordTooLarge as error:
                raise BadInput(f"{info.uri}: no record ends within {error.limit} bytes after byte offset "
                               f"{error.offset} (a shard boundary); check the quoting there, or "
                               "source.csv.maxRecordBytes", reason=Reason.BAD_INPUT) from error

        return shards.ShardPlanner(
            base_job_id=self.target.base_job_id, index=self.target.index, count=self.target.count,
            nominal=self.target.nominal, transfer=self.engine.transfer, first_boundary=boundary, read=scanner.chunks,
            load=self.checkpoints.store.peek, publish=lambda transfer: self.checkpoints.save(plan_transfer=transfer),
            heartbeat=self.checkpoints.save)

    def publish_scan(self) -> None:
        """For a piece of an object split among workers: claims its checkpoint and publishes the scan of its
        range (shards.py) now, so that the workers holding the pieces after it need not wait for this one to
        reach it. Its import (`run`) comes later, by the same owner."""
        info = head(self.s3, self.target.bucket, self.target.key, self.s3_retrier)
        cp = self.checkpoints.claim()
        if cp.plan_transfer is not None and cp.source_etag == info.etag:
            return
        if cp.source_etag not in (None, info.etag) and (cp.last_line > 0 or cp.run_id):
            raise SourceChanged(info.uri, cp.source_etag, info.etag)
        compression, preamble = self._read_start(info)
        shards.check_shardable(self.target.count, compression is not Compression.NONE)
        self.checkpoints.save(source_uri=info.uri, source_etag=info.etag)
        self._planner(info).publish_own(preamble.data_start, info.size)

    def _start_position(self, info: ObjectInfo, compression: Compression, span: shards.ShardRange
                        ) -> tuple[Position, Counts]:
        cp = self.checkpoints.current
        counts = cp.counts()
        if cp.byte_offset is not None:
            return Position(cp.last_line, max(cp.byte_offset, span.start)), counts
        if cp.last_line == 0:
            return Position(0, span.start), counts
        # A seed-format item (only last_line): find where row last_line + 1 starts, by reading.
        position = self._locate_row(info, compression, span, cp.last_line)
        self.progress.event("located-row", row=position.row + 1, offset=position.offset)
        return position, counts

    def _locate_row(self, info: ObjectInfo, compression: Compression, span: shards.ShardRange, rows: int
                    ) -> Position:
        scanner = self.engine.scanner(span.start, self.spec.source.csv.max_record_bytes)
        seen = 0
        blocks = (scanner.feed(chunk) for chunk in self._chunks(info, compression, span.start, span.end))
        for block in itertools.chain(blocks, [scanner.finish()]):
            if block is None:
                continue
            if seen + block.rows >= rows:
                last = next(i for i in range(block.count) if block.ordinal(i) == rows - seen
                            and block.content_end(i) > block.record_start(i))
                return Position(rows, block.start + block.record_end(last))
            seen += block.rows
        return Position(seen, scanner.offset)


class Stream:
    """One streaming pass: blocks to Kafka, the delivery watermark, and checkpoints on time."""

    def __init__(self, importer: Importer, info: ObjectInfo, sink: KafkaSink, preamble: Preamble,
                 span: shards.ShardRange, start: Position, counts: Counts) -> None:
        self.imp = importer
        self.spec = importer.spec
        self.info = info
        self.sink = sink
        self.span = span
        self.engine: Engine = importer.engine
        csv, sink_spec = self.spec.source.csv, self.spec.sink
        # An empty object has no header and no rows: nothing to encode.
        self.encoder = None if not preamble.header else self.engine.encoder(
            preamble.header, json=sink_spec.value_format is ValueFormat.JSON, key_column=sink_spec.key_column,
            max_value=sink.max_message_bytes - RECORD_OVERHEAD)
        self.watermark = DeliveryWatermark(start, counts)
        self.start_row = start.row
        self.row = start.row
        self.bad_rows = counts.dead_lettered + counts.skipped
        self.policy = CheckpointPolicy(self.spec.checkpoint.every_rows, self.spec.checkpoint.every_seconds,
                                       sink.transactional)
        target = importer.target
        # With several shards, row numbers count within the shard, which this header names.
        self.shard = f"{target.index}/{target.count}".encode() if target.count > 1 else None
        self.max_record = csv.max_record_bytes
        self.last_checkpoint = time.monotonic()
        self.rows_at_checkpoint = start.row
        self.read_offset = start.offset
        self.bytes_read = 0
        # Waits of the rate limit keep serving delivery reports and checkpoints.
        importer.rate.sleep = self._paced_wait

    def run(self, chunks: Iterator[bytes]) -> Outcome:
        scanner = self.engine.scanner(self.watermark.position.offset, self.max_record)
        self.sink.begin()
        interrupted = False
        try:
            for chunk in chunks:
                block = scanner.feed(chunk)
                if block is not None:
                    self.send(block)
                self.sink.poll()
                self.maybe_checkpoint()
                if self.imp.stop.is_set():
                    interrupted = True
                    break
            else:
                last = scanner.finish()
                if last is not None:
                    self.send(last)
        except ReadInterrupted:
            interrupted = True
        except RecordTooLarge as error:
            row = self.start_row + error.rows_before + 1
            failure = BadInput(f"row {row} (byte offset {error.offset}) of {self.info.uri} does not end within "
                               f"{error.limit} bytes: a quote left open, or a row larger than any Kafka record; fix "
                               "the quoting there, or raise source.csv.maxRecordBytes", reason=Reason.BAD_INPUT)
            # The rows before it are delivered and checkpointed; the import stops there.
            self.finish(State.FAILED, message=str(failure), reason=failure.reason)
            raise failure from error
        except WorkerError as error:
            if error.reason not in _SOURCE_STOPPED:
                raise
            # The source stopped (overwritten, deleted, access revoked, or S3 gone past its budget): the
            # rows read before are delivered and checkpointed, unless Kafka or DynamoDB fail too (the
            # source's error is the one to report either way).
            with contextlib.suppress(WorkerError):
                self.finish(State.FAILED, message=str(error), reason=error.reason)
            raise
        if interrupted:
            return self.finish(State.INTERRUPTED, timeout=max(1.0, self.imp.run_options.shutdown_timeout - 5))
        return self.finish(State.COMPLETED)

    # -- one block -------------------------------------------------------------------------------

    def send(self, block: RecordBlock) -> None:
        assert self.encoder is not None, "an empty object has no records"
        encoded = self.encoder.encode(block)
        verdict = triage(encoded.bad, block.count, self.spec.bad_rows, self.bad_rows)
        first_row = self.row + 1
        reasons = {bad.index: self._reason(block, bad) for bad in (*verdict.bad, *filter(None, [verdict.failure]))}
        plan = SendPlan(topic=self.spec.sink.topic, source=self.info.uri.encode(), row_headers=self.spec.sink.headers,
                        shard=self.shard, first_row=first_row, stop=verdict.stop,
                        dead_letters=tuple((bad.index, reasons[bad.index]) for bad in verdict.dead_letters),
                        dead_letter_topic=self.spec.bad_rows.dead_letter_topic,
                        max_message=self.sink.max_message_bytes)
        rows = block.ordinal(verdict.stop - 1) if verdict.stop else 0
        end = block.start + (block.record_end(verdict.stop - 1) if verdict.stop else 0)
        counts = Counts(sent=encoded.sendable_before(verdict.stop), dead_lettered=len(verdict.dead_letters),
                        skipped=len(verdict.skipped))
        flight = self.sink.send(encoded, block, plan)
        self.watermark.open_block(Position(self.row + rows, end), counts, flight)
        self.row += rows
        self.read_offset = end
        self.bytes_read += end - block.start
        self._report_bad(block, verdict, first_row, reasons)
        self.imp.rate.take(rows, end - block.start)

    def _paced_wait(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0 and not self.imp.stop.wait(min(0.1, left)):
            self.sink.poll()
            self.maybe_checkpoint()

    def _reason(self, block: RecordBlock, bad: BadRecord) -> str:
        return describe(bad, block.record(bad.index), self.spec.source.csv.encoding, self.sink.max_message_bytes)

    def _report_bad(self, block: RecordBlock, verdict: Triage, first_row: int, reasons: dict[int, str]) -> None:
        self.bad_rows += len(verdict.bad)
        action = self.spec.bad_rows.action.value
        for bad in verdict.bad:
            self.imp.progress.event("bad-row", level="warning", row=first_row + block.ordinal(bad.index) - 1,
                                    offset=block.start + block.record_start(bad.index), reason=reasons[bad.index],
                                    action=action)
        if verdict.failure is not None:
            # The rows before the bad one are sent: checkpoint right before it, and stop.
            bad = verdict.failure
            error = BadInput(f"row {self.row + 1} (byte offset {block.start + block.record_start(bad.index)}) of "
                             f"{self.info.uri}: {reasons[bad.index]}; fix the file, or set badRows.action to skip or "
                             "dead-letter", reason=Reason.BAD_INPUT)
            self.finish(State.FAILED, message=str(error), reason=error.reason)
            raise error
        if verdict.over_limit:
            limit = self.spec.bad_rows.max_bad_rows
            last = verdict.bad[-1]
            raise BadInput(f"{self.bad_rows} bad rows in {self.info.uri}, more than badRows.maxBadRows={limit} "
                           f"(latest: row {first_row + block.ordinal(last.index) - 1}: {reasons[last.index]}); fix "
                           "the file or raise the limit", reason=Reason.BAD_INPUT)

    # -- checkpoints -----------------------------------------------------------------------------

    def observe(self) -> None:
        delivered = self.watermark.delivered
        self.imp.metrics.observe(Totals(rows_read=self.row, rows_sent=delivered.sent, rows_bad=self.bad_rows,
                                        bytes_read=self.bytes_read), queue_depth=self.sink.queued())

    def maybe_checkpoint(self) -> None:
        self.observe()
        if self.policy.due(self.row - self.rows_at_checkpoint, time.monotonic() - self.last_checkpoint):
            self.checkpoint(State.RUNNING)

    def checkpoint(self, state: State, message: str | None = None, release: bool = False,
                   reason: str | None = None) -> Checkpoint:
        if self.sink.transactional and not self.sink.flush():
            raise Infrastructure(f"Kafka did not acknowledge the transaction's rows within its retry budget "
                                 f"({self.sink.budget:g}s); check the brokers, or raise retry.kafkaSeconds",
                                 reason=Reason.KAFKA_UNREACHABLE)
        failures = self.watermark.failures()
        if failures:
            raise Infrastructure(f"Kafka did not accept rows of {self.info.uri}: {failures[0]}; check the brokers "
                                 "and the topic (the import resumes from its last checkpoint)",
                                 reason=Reason.KAFKA_UNREACHABLE)
        position, counts = self.watermark.position, self.watermark.delivered
        checkpoints = self.imp.checkpoints
        progress = {"last_line": position.row, "byte_offset": position.offset, **counted(counts),
                    "rows_per_second": round(self.imp.progress.rows_per_second, 1)}
        if self.imp.position_writer is not None:
            mark = self.sink.commit(self.imp.position_writer,
                                    positions.PositionRecord(position, counts, checkpoints.current.run_id))
            progress["positions_mark"] = mark.encode()
        point = self.imp.seek_index.best(position.offset)
        seek = {"seek_point": point.encode()} if point is not None else {}
        saved = (checkpoints.release(state, message, reason, **progress, **seek) if release
                 else checkpoints.save(**progress, **seek))
        self.last_checkpoint = time.monotonic()
        self.imp.metrics.checkpointed()
        self.rows_at_checkpoint = self.row
        # Progress counts the bytes of this import's range (the data rows of the object, or the shard).
        snap = Snapshot(self.row, counts.sent, counts.dead_lettered + counts.skipped,
                        self.read_offset - self.span.start, saved.bytes_total)
        self.imp.progress.update(snap, force=state is not State.RUNNING)
        self.observe()
        if self.sink.transactional and state is State.RUNNING:
            self.sink.begin()
        return saved

    def finish(self, state: State, *, timeout: float | None = None, message: str | None = None,
               reason: str | None = None) -> Outcome:
        """Flushes (within `timeout`, by default the Kafka budget) and releases the checkpoint in `state`."""
        if not self.sink.flush(timeout):
            waited = self.sink.budget + 10 if timeout is None else timeout
            raise Infrastructure(f"Kafka did not acknowledge all rows within {waited:.0f}s of the end; the import "
                                 "resumes from its last checkpoint", reason=Reason.KAFKA_UNREACHABLE)
        if state is State.COMPLETED and not self.watermark.failures():
            self.imp.hooks.completing(self, self.watermark.position, self.watermark.delivered)
            if not self.sink.transactional and not self.sink.flush(timeout):
                raise Infrastructure("Kafka did not acknowledge the object's receipt; the import resumes from its "
                                     "last checkpoint", reason=Reason.KAFKA_UNREACHABLE)
        final = self.checkpoint(state, message, release=True, reason=reason)
        counts = self.watermark.delivered
        self.imp.progress.event("finish", state=state.value, rows_read=final.last_line, rows_sent=counts.sent,
                                rows_dead_lettered=counts.dead_lettered, rows_skipped=counts.skipped,
                                offset=final.byte_offset, engine=self.engine.name, bytes_fetched=self.imp.bytes_fetched,
                                retries=dict(self.imp.metrics.retries), throttled=dict(self.imp.metrics.throttles),
                                rate_limited_seconds=round(self.imp.rate.waited, 1))
        return Outcome(state, final)


def rate_limit(spec: ImportSpec, run: RunOptions, stop: threading.Event) -> RateLimit:
    """This worker's share of the import's rate limit (none unless spec.rateLimit sets one)."""
    share = per_shard(spec.rate_limit, run.shard_count)
    return RateLimit(share.rows_per_second, share.bytes_per_second, stop=stop)


def open_sink(spec: ImportSpec, engine: Engine, job_id: str, metrics: Metrics) -> KafkaSink:
    """The producer for `job_id` (transactional in exactly-once mode), checked against the brokers and topics."""
    topics = [spec.sink.topic]
    if spec.bad_rows.action is BadRowAction.DEAD_LETTER and spec.bad_rows.dead_letter_topic:
        topics.append(spec.bad_rows.dead_letter_topic)
    if spec.receipts.topic:
        topics.append(spec.receipts.topic)
    sink = KafkaSink(spec.sink, client_id(job_id),
                     transactional_id(job_id) if spec.delivery is Delivery.EXACTLY_ONCE else None, engine,
                     budget=spec.retry.kafka_seconds, on_throttle=lambda: metrics.throttled(Service.KAFKA))
    try:
        sink.check(topics)
    except WorkerError:
        sink.close()
        raise
    return sink


def client_id(job_id: str) -> str:
    return f"csvkafka-{job_id}"[:200]


def _pieces(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Cuts large reads into pieces of about `size` bytes."""
    for chunk in chunks:
        if len(chunk) <= size:
            yield chunk
            continue
        for at in range(0, len(chunk), size):
            yield chunk[at:at + size]
