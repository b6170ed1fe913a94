"""The checkpoint: where an import stands, as stored in its DynamoDB item.

The item keeps the seed system's attributes (`job_id`, `last_line`, `total_sent`, `timestamp`) with
their meaning, so its runbook commands still read it, and adds what resume and the operator need.
An item written by hand in the seed's format (no `byte_offset`) resumes at row `last_line + 1`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

from csvkafka_worker.watermark import Counts, offsets_from_json, offsets_to_json


class State(StrEnum):
    RUNNING = "running"
    INTERRUPTED = "interrupted"
    COMPLETED = "completed"
    FAILED = "failed"


@dataclass(frozen=True)
class Checkpoint:
    job_id: str
    # Data rows consumed (sent, dead-lettered or skipped), header and blank lines excluded.
    last_line: int = 0
    total_sent: int = 0
    timestamp: int = 0
    # Offset, in the (decompressed) stream, of the first byte after row `last_line`; None when unknown
    # (a seed-format item), which makes the worker find row `last_line + 1` by reading.
    byte_offset: int | None = None
    rows_dead_lettered: int = 0
    rows_skipped: int = 0
    bytes_total: int | None = None
    source_uri: str | None = None
    source_etag: str | None = None
    state: State = State.RUNNING
    message: str | None = None
    # Why a failed import failed (SourceNotFound, BadInput, ...), kept after its pods are gone.
    reason: str | None = None
    rows_per_second: float = 0.0
    started_at: int | None = None
    # Identifies one pass over the source from a given start: a reset or a hand-set row makes a new
    # one, so exactly-once positions committed to Kafka by an earlier pass are not resumed from.
    run_id: str | None = None
    # Sharded imports: the csv state machine's transfer over this shard's nominal byte range (9 digits,
    # published for the shards after it), and the record-aligned byte range it imports once planned.
    # range_start is also set without shards (where the data rows begin), so that
    # progress = (byte_offset - range_start) / bytes_total.
    plan_transfer: str | None = None
    range_start: int | None = None
    range_end: int | None = None
    # Compressed objects: the last seek point at or below byte_offset (seekpoints.SeekPoint.encode: its
    # compressed bit, decompressed offset and window), where a resume starts its ranged GET.
    seek_point: str | None = None
    # What the delivered rows hold (watermark.Counts): the sum, mod 2**64, of zlib.crc32 of every value sent
    # to the main topic, and per partition the first and last offset Kafka acknowledged for them (JSON
    # {"partition": [first, last]}).
    value_checksum: int | None = None
    partition_offsets: str | None = None
    # A multi-object import's shard summary item (job#i/N): its objects, done and failed (failed_objects is
    # a JSON list of {"uri", "reason", "message"}, the first 20), and the one it is importing.
    objects_total: int | None = None
    objects_done: int | None = None
    objects_failed: int | None = None
    failed_objects: str | None = None
    current_object: str | None = None
    # Multi-object imports: the rerun (spec.rerun.id, "initial" before any) whose pass this item records.
    rerun_id: str | None = None
    # Exactly-once: where this job's positions partition is read from at a start (positions.Mark).
    positions_mark: str | None = None
    # Lease: the worker that may advance this checkpoint, and until when (epoch seconds).
    owner: str | None = None
    lease_expires: float | None = None

    @property
    def rows_bad(self) -> int:
        return self.rows_dead_lettered + self.rows_skipped

    def advanced(self, **changes: Any) -> Checkpoint:
        return replace(self, **changes)

    def counts(self) -> Counts:
        """What the rows this checkpoint covers count for (checksum and offsets included)."""
        offsets = offsets_from_json(orjson.loads(self.partition_offsets)) if self.partition_offsets else {}
        return Counts(sent=self.total_sent, dead_lettered=self.rows_dead_lettered, skipped=self.rows_skipped,
                      checksum=self.value_checksum or 0, offsets=offsets)


def counted(counts: Counts) -> dict[str, Any]:
    """The checkpoint fields that record `counts` (for Checkpoint.advanced)."""
    return {"total_sent": counts.sent, "rows_dead_lettered": counts.dead_lettered, "rows_skipped": counts.skipped,
            "value_checksum": counts.checksum,
            "partition_offsets": orjson.dumps(offsets_to_json(counts.offsets)).decode() if counts.offsets else None}


_NUMBERS = ("last_line", "total_sent", "timestamp", "byte_offset", "rows_dead_lettered", "rows_skipped",
            "bytes_total", "started_at", "range_start", "range_end", "objects_total", "objects_done", "objects_failed",
            "value_checksum")
_FLOATS = ("rows_per_second", "lease_expires")
_STRINGS = ("source_uri", "source_etag", "message", "reason", "owner", "run_id", "plan_transfer", "seek_point",
            "partition_offsets",
            "failed_objects", "current_object", "rerun_id",
            "positions_mark")


def to_item(cp: Checkpoint) -> dict[str, dict[str, str]]:
    """The DynamoDB item (low-level attribute-value form) of a checkpoint."""
    item: dict[str, dict[str, str]] = {"job_id": {"S": cp.job_id}, "state": {"S": cp.state.value}}
    for name in (*_NUMBERS, *_FLOATS):
        value = getattr(cp, name)
        if value is not None:
            item[name] = {"N": _number(value)}
    for name in _STRINGS:
        value = getattr(cp, name)
        if value is not None:
            item[name] = {"S": value}
    return item


def from_item(item: dict[str, dict[str, str]]) -> Checkpoint:
    """Reads an item written by csvkafka or by hand in the seed's format."""
    fields: dict[str, Any] = {"job_id": item["job_id"]["S"]}
    for name in _NUMBERS:
        if name in item:
            fields[name] = int(Decimal(item[name]["N"]))
    for name in _FLOATS:
        if name in item:
            fields[name] = float(item[name]["N"])
    for name in _STRINGS:
        if name in item:
            fields[name] = item[name]["S"]
    if "state" in item:
        fields["state"] = State(item["state"]["S"])
    return Checkpoint(**fields)


def _number(value: float) -> str:
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".")
    return str(value)


@dataclass(frozen=True)
class CheckpointPolicy:
    """When a checkpoint is due: after `every_rows` rows or `every_seconds` seconds, whichever first.

    A row count bounds the duplicates a crash can cause in at-least-once mode; exactly-once has none,
    so its transactions (each one drains the pipeline) are committed on time alone.
    """

    every_rows: int
    every_seconds: float
    transactional: bool

    def due(self, rows_since: int, seconds_since: float) -> bool:
        if not self.transactional and rows_since >= self.every_rows:
            return True
        return seconds_since >= self.every_seconds


def object_job_id(job_id: str, bucket: str, key: str) -> str:
    """The checkpoint key of one object of a multi-object import."""
    return f"{job_id}@{bucket}/{key}"


def receipt_id(object_id: str) -> str:
    """The item keeping an object's receipt, for the manifest."""
    return f"{object_id}!receipt"


def manifest_id(job_id: str) -> str:
    """The item that elects the one worker writing a multi-object import's manifest."""
    return f"{job_id}!manifest"


def shard_job_id(job_id: str, index: int, count: int) -> str:
    """The checkpoint key of one shard: the job id itself for a single shard, else suffixed."""
    return job_id if count == 1 else f"{job_id}#{index}/{count}"
