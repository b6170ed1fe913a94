"""A multi-object import's objects, one row each, from its plan and their checkpoint items.

Pure: the plan's entries and the items come in, the rows go out. An object's items are those of its
pieces when the plan splits it (checkpoint.shard_job_id of its object id), else its object id alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from csvkafka_operator.status import bytes_read, percent
from csvkafka_worker.checkpoint import Checkpoint, State, object_job_id, shard_job_id
from csvkafka_worker.plan import ObjectEntry, assign

PENDING = "pending"
# Some pieces completed, others not begun: their shards have not reached them yet.
PARTIAL = "partial"


@dataclass(frozen=True)
class PlannedObject:
    entry: ObjectEntry
    item_ids: tuple[str, ...]


@dataclass(frozen=True)
class ObjectRow:
    uri: str
    state: str
    rows_sent: int
    rows_bad: int
    size: int
    progress: str | None
    reason: str


def planned(job_id: str, entries: Sequence[ObjectEntry], shard_count: int) -> list[PlannedObject]:
    """Each object of the plan with its checkpoint items, cut as the shards cut it."""
    total = sum(entry.size for entry in entries)
    pieces = {(unit.entry.bucket, unit.entry.key): unit.pieces
              for shard in range(shard_count) for unit in assign(entries, total, shard, shard_count)}
    found = []
    for entry in entries:
        object_id = object_job_id(job_id, entry.bucket, entry.key)
        count = pieces.get((entry.bucket, entry.key), 1)
        found.append(PlannedObject(entry, tuple(shard_job_id(object_id, j, count) for j in range(count))))
    return found


def rows(objects: Iterable[PlannedObject], checkpoints: Mapping[str, Checkpoint]) -> list[ObjectRow]:
    return [_row(planned_object, [checkpoints.get(item) for item in planned_object.item_ids])
            for planned_object in objects]


def _row(planned_object: PlannedObject, items: Sequence[Checkpoint | None]) -> ObjectRow:
    present = [cp for cp in items if cp is not None]
    failed = next((cp for cp in present if cp.state is State.FAILED), None)
    return ObjectRow(
        uri=planned_object.entry.uri,
        state=_state(items, failed),
        rows_sent=sum(cp.total_sent for cp in present),
        rows_bad=sum(cp.rows_bad for cp in present),
        size=planned_object.entry.size,
        progress=_progress(items),
        reason=_reason(failed) if failed is not None else "",
    )


def _state(items: Sequence[Checkpoint | None], failed: Checkpoint | None) -> str:
    states = {cp.state for cp in items if cp is not None}
    if failed is not None:
        return State.FAILED.value
    if not states:
        return PENDING
    if states == {State.COMPLETED}:
        return State.COMPLETED.value if None not in items else PARTIAL
    return State.RUNNING.value if State.RUNNING in states else State.INTERRUPTED.value


def _progress(items: Sequence[Checkpoint | None]) -> str | None:
    """Bytes read of the pieces' bytes, once every piece has begun and says both."""
    if all(cp is not None and cp.state is State.COMPLETED for cp in items):
        return "100%"
    done = total = 0
    for cp in items:
        read = None if cp is None else bytes_read(cp)
        if cp is None or read is None or not cp.bytes_total:
            return None
        done += read
        total += cp.bytes_total
    return percent(done, total)


def _reason(failed: Checkpoint) -> str:
    reason = failed.reason or State.FAILED.value
    return f"{reason}: {failed.message}" if failed.message else reason
