"""One import, start to end: claim the checkpoint, stream blocks to Kafka, checkpoint, finish.

The imperative shell around the pure parts (records, encode, watermark, preamble): S3, Kafka and
DynamoDB are reached only through source.py, sink.py and store.py.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from csvkafka_worker import decompress, positions, shards
from csvkafka_worker.checkpoint import Checkpoint, State, shard_job_id
from csvkafka_worker.encode import BadRecord, RowEncoder
from csvkafka_worker.errors import BadInput, Infrastructure, StoppedWhileWaiting, WorkerError
from csvkafka_worker.kafka_config import transactional_id
from csvkafka_worker.metrics import Metrics, Totals
from csvkafka_worker.options import RunOptions
from csvkafka_worker.preamble import Preamble, read_preamble
from csvkafka_worker.progress import Progress, Snapshot
from csvkafka_worker.records import Block, BlockSplitter, RecordTooLarge, is_unterminated, record_ends, split_records
from csvkafka_worker.sink import RECORD_OVERHEAD, Headers, KafkaSink, probe
from csvkafka_worker.source import ObjectInfo, RangedReader, head
from csvkafka_worker.spec import BadRowAction, Compression, Delivery, ImportSpec
from csvkafka_worker.store import CheckpointStore
from csvkafka_worker.watermark import Counts, DeliveryWatermark, PendingBlock, Position

# Bytes handed to the record splitter at a time (S3 is read in larger ranges).
BLOCK_BYTES = 1024 * 1024
# The end of a range that runs to the end of the object, whatever its (decompressed) size.
_UNBOUNDED = 2**63


@dataclass(frozen=True)
class Outcome:
    state: State
    checkpoint: Checkpoint


class Importer:
    # The job's checkpoint as this worker last wrote (or claimed) it.
    current: Checkpoint

    def __init__(self, spec: ImportSpec, run: RunOptions, *, s3: Any, dynamodb: Any, owner: str,
                 stop: threading.Event, progress: Progress | None = None,
                 positions_topic: str = positions.DEFAULT_TOPIC) -> None:
        self.spec = spec
        self.run_options = run
        self.s3 = s3
        self.stop = stop
        self.job_id = shard_job_id(spec.job_id, run.shard_index, run.shard_count)
        self.store = CheckpointStore(dynamodb, spec.checkpoint.table, self.job_id, owner=owner,
                                     lease_seconds=spec.checkpoint.lease_seconds, sleep=self._wait_unless_stopped)
        self.progress = progress or Progress(self.job_id, run.progress)
        self.metrics = Metrics(self.job_id)
        self.positions_topic = positions_topic
        self.exactly_once = spec.delivery is Delivery.EXACTLY_ONCE
        self.sink: KafkaSink | None = None
        self._waiting_logged = False
        dialect = spec.source.csv
        self.quote = dialect.quote.encode()
        self.escape = dialect.escape.encode() if dialect.escape else None

    def _wait_unless_stopped(self, seconds: float) -> None:
        """Sleeps while the job's lease is held by another worker; a SIGTERM ends the wait at once."""
        if not self._waiting_logged:
            self._waiting_logged = True
            self.progress.event("waiting-for-lease", lease_seconds=self.spec.checkpoint.lease_seconds)
        if self.stop.wait(seconds):
            raise StoppedWhileWaiting(f"stopped while waiting for job {self.job_id!r}'s lease; nothing was imported",
                                      reason="Interrupted")

    # -- the whole run ---------------------------------------------------------------------------

    def run(self) -> Outcome:
        info = head(self.s3, self.spec.source.bucket, self.spec.source.key)
        self.current = checkpoint = self.store.claim()
        try:
            return self._run_claimed(info, checkpoint)
        except WorkerError as error:
            self._stop_failed(error)
            raise
        except Exception as error:
            self._stop_failed(Infrastructure(f"unexpected error: {error!r}", reason="InternalError"))
            raise

    def _stop_failed(self, error: WorkerError) -> None:
        if self.sink is not None:
            self.sink.abort()
        if self.current.owner is None:
            return  # already released by a clean stop
        # If the lease was lost or DynamoDB is gone, the original error is still the one to report.
        with contextlib.suppress(WorkerError):
            self.store.release(self.current, State.FAILED, message=str(error), reason=error.reason)

    def _run_claimed(self, info: ObjectInfo, checkpoint: Checkpoint) -> Outcome:
        if checkpoint.state is State.COMPLETED and checkpoint.source_etag in (None, info.etag):
            self.progress.event("already-complete", row=checkpoint.last_line, sent=checkpoint.total_sent)
            final = self.store.release(checkpoint, State.COMPLETED, checkpoint.message)
            return Outcome(State.COMPLETED, final)
        if checkpoint.source_etag not in (None, info.etag) and checkpoint.last_line > 0:
            raise BadInput(f"{info.uri} changed since this import started (ETag {checkpoint.source_etag} → "
                           f"{info.etag}); reset the import to load the new version", reason="SourceChanged")

        compression, preamble = self._read_start(info)
        shards.check_shardable(self.run_options.shard_count, compression is not Compression.NONE,
                               self.spec.source.csv.escape)
        sink_topics = [self.spec.sink.topic]
        if self.spec.bad_rows.action is BadRowAction.DEAD_LETTER and self.spec.bad_rows.dead_letter_topic:
            sink_topics.append(self.spec.bad_rows.dead_letter_topic)
        probe(self.spec.sink, sink_topics, self._client_id())

        # The run id is stored before anything is produced, so that a crash at any later point
        # resumes this same pass.
        self.current = self.store.save(checkpoint.advanced(
            source_uri=info.uri, source_etag=info.etag, state=State.RUNNING, message=None,
            run_id=checkpoint.run_id or uuid.uuid4().hex, started_at=checkpoint.started_at or int(time.time())))
        span = self._shard_range(info, preamble)
        start, counts, skip_rows = self._start_position(self.current, span.start)
        self.sink = sink = KafkaSink(self.spec.sink, self._client_id(),
                                     transactional_id(self.job_id) if self.exactly_once else None)
        run_id = self.current.run_id
        if self.exactly_once:
            positions.ensure_topic(self.spec.sink, self.positions_topic, self._client_id())
            committed = positions.read_committed_position(self.spec.sink, self.positions_topic, self.job_id,
                                                          self._client_id())
            if committed is not None and committed[1].get("run_id") == run_id:
                start, counts, skip_rows = committed[0], _counts(committed[1]), 0

        # Progress is (byte_offset - range_start) / bytes_total, for a whole object and for a shard alike.
        self.current = self.current.advanced(
            range_start=span.start,
            bytes_total=min(span.end, info.size) - span.start if compression is Compression.NONE else None)
        run = _Run(self, info, sink, preamble, span, start, counts, skip_rows)
        self.metrics.serve(self.run_options.metrics_port)
        self.progress.event("start", source=info.uri, etag=info.etag, size=info.size, compression=compression.value,
                            row=start.row, offset=start.offset, delivery=self.spec.delivery.value)
        return run.stream(self._chunks(info, compression, start.offset, span.end))

    # -- pieces ----------------------------------------------------------------------------------

    def _client_id(self) -> str:
        return f"csvkafka-{self.job_id}"[:200]

    def _chunks(self, info: ObjectInfo, compression: Compression, offset: int, end: int) -> Iterator[bytes]:
        reader = RangedReader(self.s3, info, range_bytes=self.run_options.range_bytes)
        if compression is Compression.NONE:
            return reader.chunks(offset, end)
        return decompress.skip(decompress.decompressed(reader.chunks(0), compression, info.uri), offset)

    def _read_start(self, info: ObjectInfo) -> tuple[Compression, Preamble]:
        """The object's compression (from its first bytes) and its preamble, from one read of its start."""
        raw = RangedReader(self.s3, info, range_bytes=256 * 1024, prefetch=1).chunks(0)
        first = next(raw, b"")
        compression = decompress.detect(info.key, first, self.spec.source.compression)
        stream = decompress.decompressed(itertools.chain([first], raw), compression, info.uri)
        return compression, self._read_preamble(stream)

    def _read_preamble(self, stream: Iterator[bytes]) -> Preamble:
        prefix = b""
        for chunk in stream:
            prefix += chunk
            found = read_preamble(prefix, self.spec.source.csv, self.spec.sink.key_column, at_eof=False)
            if found is not None:
                return found
        found = read_preamble(prefix, self.spec.source.csv, self.spec.sink.key_column, at_eof=True)
        assert found is not None
        return found

    def _shard_range(self, info: ObjectInfo, preamble: Preamble) -> shards.ShardRange:
        """The whole object after the header, or this shard's record-aligned part of it."""
        cp, count = self.current, self.run_options.shard_count
        if count == 1:
            return shards.ShardRange(preamble.data_start, _UNBOUNDED)
        if cp.range_start is not None and cp.range_end is not None:
            return shards.ShardRange(cp.range_start, cp.range_end)
        scanner = RangedReader(self.s3, info, range_bytes=256 * 1024, prefetch=1)

        def publish(quotes: int) -> None:
            self.current = self.store.save(self.current.advanced(plan_quotes=quotes))

        def heartbeat() -> None:
            self.current = self.store.save(self.current)

        planner = shards.ShardPlanner(base_job_id=self.spec.job_id, index=self.run_options.shard_index, count=count,
                                      quote=self.quote, read=scanner.chunks, load=self.store.peek, publish=publish,
                                      heartbeat=heartbeat)
        span = planner.plan(preamble.data_start, info.size, self.current)
        self.current = self.store.save(self.current.advanced(range_start=span.start, range_end=span.end))
        self.progress.event("shard-planned", shard=f"{self.run_options.shard_index}/{count}", range_start=span.start,
                            range_end=span.end)
        return span

    def _start_position(self, checkpoint: Checkpoint, data_start: int) -> tuple[Position, Counts, int]:
        counts = Counts(sent=checkpoint.total_sent, dead_lettered=checkpoint.rows_dead_lettered,
                        skipped=checkpoint.rows_skipped)
        if checkpoint.byte_offset is not None:
            return Position(checkpoint.last_line, max(checkpoint.byte_offset, data_start)), counts, 0
        # A seed-format item (only last_line): read from the first data row and skip that many rows.
        return Position(0, data_start), counts, checkpoint.last_line


class _Run:
    """The state of one streaming pass; lives as long as `Importer.run`."""

    def __init__(self, importer: Importer, info: ObjectInfo, sink: KafkaSink, preamble: Preamble,
                 span: shards.ShardRange, start: Position, counts: Counts, skip_rows: int) -> None:
        self.imp = importer
        self.span = span
        self.spec = importer.spec
        self.info = info
        self.sink = sink
        self.encoder = RowEncoder(preamble.header, self.spec.source.csv, self.spec.sink.value_format,
                                  self.spec.sink.key_column)
        self.watermark = DeliveryWatermark(start, counts)
        self.row = start.row
        self.skip_rows = skip_rows
        self.bad_rows = counts.dead_lettered + counts.skipped
        self.source_header: tuple[str, str | bytes | None] = ("csvkafka.source", info.uri.encode())
        run = importer.run_options
        # With several shards, row numbers count within the shard, which this header names.
        self.shard_header: tuple[str, str | bytes | None] | None = (
            ("csvkafka.shard", f"{run.shard_index}/{run.shard_count}".encode()) if run.shard_count > 1 else None)
        self.last_checkpoint = time.monotonic()
        self.rows_at_checkpoint = start.row
        self.read_offset = start.offset
        self.bytes_read = 0

    def stream(self, chunks: Iterator[bytes]) -> Outcome:
        splitter = BlockSplitter(start=self.watermark.position.offset, quote=self.imp.quote, escape=self.imp.escape)
        self.sink.begin()
        interrupted = False
        try:
            for chunk in _pieces(chunks, BLOCK_BYTES):
                block = splitter.feed(chunk)
                if block is not None:
                    self.send_block(block, final=False)
                self.sink.poll()
                self.maybe_checkpoint()
                if self.imp.stop.is_set():
                    interrupted = True
                    break
            else:
                last = splitter.finish()
                if last is not None:
                    self.send_block(last, final=True)
        except RecordTooLarge as error:
            raise BadInput(f"{self.info.uri}: {error}", reason="BadInput") from error
        if interrupted:
            return self.finish(State.INTERRUPTED, timeout=max(1.0, self.imp.run_options.shutdown_timeout - 5))
        return self.finish(State.COMPLETED, timeout=300)

    # -- one block -------------------------------------------------------------------------------

    def send_block(self, block: Block, *, final: bool) -> None:
        records = split_records(block.data, self.imp.quote, self.imp.escape)
        data, start = block.data, block.start
        if self.skip_rows:
            records, data, start = self._skip_resumed_rows(records, data, start)
        unterminated = final and bool(records) and is_unterminated(records[-1], self.imp.quote, self.imp.escape)
        encoded = self.encoder.encode(records[:-1] if unterminated else records)
        bad = list(encoded.bad)
        if unterminated:
            bad.append(BadRecord(len(records) - 1, "quoted field not closed at the end of the object"))
        values, keys, indices = encoded.values, encoded.keys, encoded.indices
        if values and max(map(len, values)) > self.sink.max_message_bytes - RECORD_OVERHEAD:
            values, keys, indices, oversized = self._split_oversized(values, keys, indices)
            bad = sorted([*bad, *oversized], key=lambda b: b.index)
        ordinals = _Ordinals(records)
        n_rows = ordinals.count
        first_row = self.row + 1
        if bad and self.spec.bad_rows.action is BadRowAction.FAIL:
            self._fail_at(bad[0], records, data, start, ordinals, values, keys, indices)
        dead_letter = self.spec.bad_rows.action is BadRowAction.DEAD_LETTER
        counts = Counts(sent=len(values), dead_lettered=len(bad) if dead_letter else 0,
                        skipped=0 if dead_letter else len(bad))
        pending = self.watermark.open_block(Position(self.row + n_rows, start + len(data)), counts)
        pending.outstanding = len(values) + counts.dead_lettered
        self._produce(pending, values, keys, indices, ordinals, first_row)
        if bad:
            self._handle_bad(pending, bad, records, data, start, ordinals, first_row)
        self.row += n_rows
        self.read_offset = start + len(data)
        self.bytes_read += len(data)

    def _produce(self, pending: PendingBlock, values: list[bytes], keys: list[bytes | None] | None,
                 indices: list[int], ordinals: _Ordinals, first_row: int) -> None:
        headers: list[Headers] | None = None
        if self.spec.sink.headers:
            src = self.source_header
            if ordinals.dense and len(indices) == ordinals.count:
                numbers: Iterable[bytes] = map(b"%d".__mod__, range(first_row, first_row + len(indices)))
            else:
                numbers = (b"%d" % (first_row + ordinals[i] - 1) for i in indices)
            headers = [[src, ("csvkafka.row", number)] for number in numbers]
            if self.shard_header is not None:
                for row_headers in headers:
                    row_headers.append(self.shard_header)
        self.sink.produce_rows(pending, values, keys, headers)

    def _skip_resumed_rows(self, records: list[bytes], data: bytes, start: int) -> tuple[list[bytes], bytes, int]:
        ordinals = _Ordinals(records)
        cut = next((i + 1 for i in range(len(records)) if ordinals[i] == self.skip_rows), None)
        if cut is None:
            self.skip_rows -= ordinals.count
            self.row += ordinals.count
            return [], b"", start + len(data)
        ends = record_ends(data, records)
        self.row += self.skip_rows
        self.skip_rows = 0
        return records[cut:], data[ends[cut - 1]:], start + ends[cut - 1]

    def _split_oversized(self, values: list[bytes], keys: list[bytes | None] | None, indices: list[int]
                         ) -> tuple[list[bytes], list[bytes | None] | None, list[int], list[BadRecord]]:
        limit = self.sink.max_message_bytes - RECORD_OVERHEAD
        keep = [j for j, v in enumerate(values) if len(v) <= limit]
        oversized = [BadRecord(indices[j], f"encoded row of {len(v)} bytes is larger than a Kafka message may "
                                           f"be (message.max.bytes={self.sink.max_message_bytes})")
                     for j, v in enumerate(values) if len(v) > limit]
        return ([values[j] for j in keep], [keys[j] for j in keep] if keys is not None else None,
                [indices[j] for j in keep], oversized)

    def _fail_at(self, first_bad: BadRecord, records: list[bytes], data: bytes, start: int, ordinals: _Ordinals,
                 values: list[bytes], keys: list[bytes | None] | None, indices: list[int]) -> None:
        """Sends the rows before the bad one, checkpoints right before it, and stops the import."""
        before = [j for j, i in enumerate(indices) if i < first_bad.index]
        bad_start = start + _record_start(record_ends(data, records), first_bad.index)
        rows_before = ordinals[first_bad.index] - 1
        pending = self.watermark.open_block(Position(self.row + rows_before, bad_start), Counts(sent=len(before)))
        pending.outstanding = len(before)
        self._produce(pending, [values[j] for j in before], [keys[j] for j in before] if keys is not None else None,
                      [indices[j] for j in before], ordinals, self.row + 1)
        row_number = self.row + rows_before + 1
        self.row += rows_before
        error = BadInput(f"row {row_number} (byte offset {bad_start}) of {self.info.uri}: {first_bad.reason}; fix the "
                         "file, or set badRows.action to skip or dead-letter", reason="BadInput")
        self.finish(State.FAILED, timeout=60, message=str(error), reason=error.reason)
        raise error

    def _handle_bad(self, pending: PendingBlock, bad: list[BadRecord], records: list[bytes], data: bytes, start: int,
                    ordinals: _Ordinals, first_row: int) -> None:
        self.bad_rows += len(bad)
        ends = record_ends(data, records)
        limit = self.spec.bad_rows.max_bad_rows
        for entry in bad:
            row_number = first_row + ordinals[entry.index] - 1
            offset = start + _record_start(ends, entry.index)
            if self.spec.bad_rows.action is BadRowAction.DEAD_LETTER:
                topic = self.spec.bad_rows.dead_letter_topic
                assert topic is not None
                self.sink.produce_dead_letter(pending, topic, records[entry.index], [
                    self.source_header, ("csvkafka.row", str(row_number).encode()),
                    ("csvkafka.offset", str(offset).encode()), ("csvkafka.reason", entry.reason.encode())])
            self.imp.progress.event("bad-row", level="warning", row=row_number, offset=offset, reason=entry.reason,
                                    action=self.spec.bad_rows.action.value)
        if limit is not None and self.bad_rows > limit:
            first = bad[0]
            raise BadInput(f"{self.bad_rows} bad rows in {self.info.uri}, more than badRows.maxBadRows={limit} "
                           f"(latest: row {first_row + ordinals[first.index] - 1}: {first.reason}); fix the file or "
                           "raise the limit", reason="BadInput")

    # -- checkpoints -----------------------------------------------------------------------------

    def observe(self) -> None:
        delivered = self.watermark.delivered
        self.imp.metrics.observe(Totals(rows_read=self.row, rows_sent=delivered.sent, rows_bad=self.bad_rows,
                                        bytes_read=self.bytes_read),
                                 checkpoint_age=time.monotonic() - self.last_checkpoint,
                                 queue_depth=len(self.sink.producer))

    def maybe_checkpoint(self) -> None:
        self.observe()
        every = self.spec.checkpoint
        # A row count bounds the duplicates a crash can cause in at-least-once mode; exactly-once has
        # none, so its transactions (each a pipeline drain) are committed on time alone.
        rows_due = not self.sink.transactional and self.row - self.rows_at_checkpoint >= every.every_rows
        if not rows_due and time.monotonic() - self.last_checkpoint < every.every_seconds:
            return
        self.checkpoint(State.RUNNING)

    def checkpoint(self, state: State, message: str | None = None, release: bool = False,
                   reason: str | None = None) -> Checkpoint:
        if self.sink.transactional and not self.sink.flush(120):
            raise Infrastructure("Kafka did not acknowledge the transaction's rows within 120s",
                                 reason="KafkaUnreachable")
        failures = self.watermark.failures()
        if failures:
            raise Infrastructure(f"Kafka did not accept rows of {self.info.uri}: {failures[0]}; check the brokers "
                                 "and the topic (the import resumes from its last checkpoint)",
                                 reason="KafkaUnreachable")
        position, counts = self.watermark.position, self.watermark.delivered
        if self.sink.transactional:
            self.sink.commit(self.imp.positions_topic, self.imp.job_id, position,
                             {"sent": counts.sent, "dead_lettered": counts.dead_lettered, "skipped": counts.skipped,
                              "run_id": self.imp.current.run_id})
        current = self.imp.current.advanced(
            last_line=position.row, byte_offset=position.offset, total_sent=counts.sent,
            rows_dead_lettered=counts.dead_lettered, rows_skipped=counts.skipped,
            rows_per_second=round(self.imp.progress.rows_per_second, 1))
        saved = (self.imp.store.release(current, state, message, reason) if release
                 else self.imp.store.save(current))
        self.imp.current = saved
        self.last_checkpoint = time.monotonic()
        self.rows_at_checkpoint = self.row
        # Progress counts the bytes of this import's range (the data rows of the object, or the shard).
        snap = Snapshot(self.row, counts.sent, counts.dead_lettered + counts.skipped,
                        self.read_offset - self.span.start, self.imp.current.bytes_total)
        self.imp.progress.update(snap, force=state is not State.RUNNING)
        self.observe()
        if self.sink.transactional and state is State.RUNNING:
            self.sink.begin()
        return saved

    def finish(self, state: State, *, timeout: float, message: str | None = None,
               reason: str | None = None) -> Outcome:
        if not self.sink.flush(timeout):
            raise Infrastructure(f"Kafka did not acknowledge all rows within {timeout:.0f}s of the end; the import "
                                 "resumes from its last checkpoint", reason="KafkaUnreachable")
        final = self.checkpoint(state, message, release=True, reason=reason)
        counts = self.watermark.delivered
        self.imp.progress.event("finish", state=state.value, rows_read=final.last_line, rows_sent=counts.sent,
                                rows_dead_lettered=counts.dead_lettered, rows_skipped=counts.skipped,
                                offset=final.byte_offset)
        return Outcome(state, final)


def _record_start(ends: list[int], index: int) -> int:
    """Where record `index` begins within its block, from the ends of the records (record_ends)."""
    return ends[index - 1] if index else 0


def _pieces(chunks: Iterator[bytes], size: int) -> Iterator[bytes]:
    """Cuts large reads into pieces of about `size` bytes: a block's rows, values and delivery
    reports are all alive at once, so the piece size bounds the worker's memory."""
    for chunk in chunks:
        if len(chunk) <= size:
            yield chunk
            continue
        for at in range(0, len(chunk), size):
            yield chunk[at:at + size]


class _Ordinals:
    """Data-row ordinals (1-based) of a block's records: blank records are not rows."""

    def __init__(self, records: list[bytes]) -> None:
        # Blank lines are rare: without them the ordinal of record i is i + 1, no list needed.
        self.dense = b"" not in records
        self._ordinals = None if self.dense else list(itertools.accumulate(1 if r else 0 for r in records))
        self.count = len(records) if self._ordinals is None else (self._ordinals[-1] if self._ordinals else 0)

    def __getitem__(self, index: int) -> int:
        return index + 1 if self._ordinals is None else self._ordinals[index]


def _counts(raw: dict[str, Any]) -> Counts:
    return Counts(sent=raw.get("sent", 0), dead_lettered=raw.get("dead_lettered", 0), skipped=raw.get("skipped", 0))
