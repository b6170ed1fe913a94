"""The plan of a multi-object import (its listed objects, in order) in the checkpoint table, made once per run.

Items: `{job}!plan`, the header (run id, state, objects, bytes, pages), and `{job}!plan!{n}`, pages of at
most 1000 entries as zlib-compressed JSON, cut by size as well so that any item stays far below
DynamoDB's 400 KB whatever the keys' lengths.

The first worker to find no plan for its run (none, another run's, or one whose maker's lease
expired) takes the header with a conditional write of a higher generation, lists, writes the pages
and marks it complete; the others poll the header until then (bounded). Every write of a maker
is conditional on its generation: one that lost its lease cannot overwrite the pages of the worker
that took over, and goes back to waiting. A new run's plan overwrites the old pages; `extent` counts
every page ever written, for `delete`.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from csvkafka_worker.errors import Infrastructure, Reason, WorkerError
from csvkafka_worker.plan import ObjectEntry
from csvkafka_worker.retry import Retrier
from csvkafka_worker.store import CheckpointStore, ConditionFailed

PAGE_ENTRIES = 1000
# Uncompressed JSON per page: compressed it is at most a little larger, far below the item limit.
PAGE_BYTES = 256 * 1024


class PlanState(StrEnum):
    LISTING = "listing"
    COMPLETE = "complete"


@dataclass(frozen=True)
class PlanHeader:
    run_id: str
    state: PlanState
    objects: int = 0
    total_bytes: int = 0
    pages: int = 0
    # Pages ever written under this job (a replaced plan may have had more).
    extent: int = 0
    generation: int = 0
    owner: str | None = None
    lease_expires: float | None = None


class _Overtaken(Exception):
    """Another worker took the plan over: this one's listing is void."""


class PlanStore:
    def __init__(self, client: Any, table: str, job_id: str, retrier: Retrier, *, owner: str | None = None,
                 lease_seconds: float = 120.0, poll_seconds: float = 1.0, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        # The checkpoint store's calls: the same retries and the same errors for the same table.
        self._items = CheckpointStore(client, table, job_id, owner=owner or "", lease_seconds=lease_seconds,
                                      retrier=retrier)
        self.table = table
        self.job_id = job_id
        self.owner = owner or f"plan-{uuid.uuid4().hex[:12]}"
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self._clock = clock
        self._sleep = sleep

    def ensure(self, run_id: str, lister: Callable[[], Iterator[ObjectEntry]], wait_seconds: float) -> PlanHeader:
        """The complete plan of run `run_id`: made by this worker (listing with `lister`) or another one."""
        deadline = self._clock() + wait_seconds
        while True:
            header = self.header()
            now = self._clock()
            if header is not None and header.run_id == run_id and header.state is PlanState.COMPLETE:
                return header
            if header is None or header.run_id != run_id or (header.lease_expires or 0.0) < now:
                taken = self._take(run_id, header, now)
                if taken is not None:
                    with contextlib.suppress(_Overtaken):
                        return self._make(taken, lister)
                continue
            if now >= deadline:
                raise Infrastructure(
                    f"the plan of job {self.job_id!r} (its source's objects) was still being listed by {header.owner} "
                    f"after {wait_seconds:g}s; that worker's listing of S3 is slow or stuck. The Job retries and "
                    "waits again; a worker whose lease expires is taken over", reason=Reason.S3_UNAVAILABLE)
            self._sleep(min(self.poll_seconds, max(0.0, deadline - now)))

    def header(self) -> PlanHeader | None:
        item = self._get(self._header_key())
        return None if item is None else decode_header(item)

    def entries(self) -> Iterator[ObjectEntry]:
        """The complete plan's objects in plan order, read page by page."""
        header = self.header()
        if header is None or header.state is not PlanState.COMPLETE:
            raise Infrastructure(f"job {self.job_id!r} has no complete plan to read", reason=Reason.INTERNAL_ERROR)
        for n in range(header.pages):
            item = self._get(self._page_key(n))
            if item is None or int(item["generation"]["N"]) != header.generation:
                raise Infrastructure(f"page {n} of the plan of job {self.job_id!r} is missing or from another plan "
                                     "(the plan was replaced by a new run); the Job retries",
                                     reason=Reason.INTERNAL_ERROR)
            yield from decode_page(item)

    def delete(self) -> None:
        """Removes the plan, pages first (a reset)."""
        header = self.header()
        if header is None:
            return
        for n in range(max(header.pages, header.extent)):
            self._items._call("delete_item", Key=self._page_key(n))
        self._items._call("delete_item", Key=self._header_key())

    # -- making it -------------------------------------------------------------------------------

    def _take(self, run_id: str, seen: PlanHeader | None, now: float) -> PlanHeader | None:
        """Writes a header of a higher generation for this worker; None if another worker was faster."""
        mine = PlanHeader(run_id, PlanState.LISTING, extent=seen.extent if seen else 0,
                          generation=max(seen.generation + 1 if seen else 1, int(now * 1000)), owner=self.owner,
                          lease_expires=now + self.lease_seconds)
        condition: dict[str, Any] = {"ConditionExpression": "attribute_not_exists(job_id)"}
        if seen is not None:
            condition = {"ConditionExpression": "generation = :seen",
                         "ExpressionAttributeValues": {":seen": {"N": str(seen.generation)}}}
        try:
            self._items._call("put_item", Item=self._header_item(mine), **condition)
        except ConditionFailed:
            return None
        return mine

    def _make(self, header: PlanHeader, lister: Callable[[], Iterator[ObjectEntry]]) -> PlanHeader:
        pages = objects = total = 0
        extent = header.extent
        batch: list[bytes] = []
        size = 0
        renewed = self._clock()

        def flush() -> None:
            nonlocal pages, extent, batch, size, renewed
            extent = max(extent, pages + 1)
            self._update(header, "SET lease_expires = :until, extent = :extent",
                         {":until": {"N": str(self._clock() + self.lease_seconds)}, ":extent": {"N": str(extent)}})
            self._put_page(header, pages, b"[" + b",".join(batch) + b"]")
            pages += 1
            batch, size, renewed = [], 0, self._clock()

        try:
            for entry in lister():
                row = json.dumps([entry.bucket, entry.key, entry.size, entry.etag, entry.last_modified.isoformat()],
                                 ensure_ascii=False, separators=(",", ":")).encode()
                if batch and (len(batch) >= PAGE_ENTRIES or size + len(row) + 1 > PAGE_BYTES):
                    flush()
                batch.append(row)
                size += len(row) + 1
                objects += 1
                total += entry.size
                if self._clock() - renewed > self.lease_seconds / 3:
                    self._update(header, "SET lease_expires = :until",
                                 {":until": {"N": str(self._clock() + self.lease_seconds)}})
                    renewed = self._clock()
            if batch:
                flush()
        except BaseException as error:
            if not isinstance(error, _Overtaken):
                # Another worker may try at once (this one's error, e.g. a missing bucket, is its too).
                with contextlib.suppress(WorkerError, _Overtaken):
                    self._update(header, "SET lease_expires = :until", {":until": {"N": "0"}})
            raise
        self._update(header, "SET #state = :complete, objects = :objects, total_bytes = :total, pages = :pages, "
                             "extent = :extent REMOVE #owner, lease_expires",
                     {":complete": {"S": PlanState.COMPLETE.value}, ":objects": {"N": str(objects)},
                      ":total": {"N": str(total)}, ":pages": {"N": str(pages)}, ":extent": {"N": str(extent)}},
                     names={"#state": "state", "#owner": "owner"})
        return PlanHeader(header.run_id, PlanState.COMPLETE, objects, total, pages, extent, header.generation)

    def _update(self, header: PlanHeader, expression: str, values: dict[str, Any], *,
                names: dict[str, str] | None = None) -> None:
        """An update of the header, if this worker's generation still holds it."""
        try:
            self._items._call("update_item", Key=self._header_key(), UpdateExpression=expression,
                              ConditionExpression="generation = :generation",
                              ExpressionAttributeValues={**values, ":generation": {"N": str(header.generation)}},
                              **({"ExpressionAttributeNames": names} if names else {}))
        except ConditionFailed as error:
            raise _Overtaken from error

    def _put_page(self, header: PlanHeader, n: int, rows: bytes) -> None:
        item = {**self._page_key(n), "run_id": {"S": header.run_id}, "generation": {"N": str(header.generation)},
                "entries": {"B": zlib.compress(rows, 6)}}
        try:
            self._items._call("put_item", Item=item,
                              ConditionExpression="attribute_not_exists(job_id) OR generation <= :generation",
                              ExpressionAttributeValues={":generation": {"N": str(header.generation)}})
        except ConditionFailed as error:
            raise _Overtaken from error

    def _header_item(self, header: PlanHeader) -> dict[str, Any]:
        item: dict[str, Any] = {
            **self._header_key(), "run_id": {"S": header.run_id}, "state": {"S": header.state.value},
            "objects": {"N": str(header.objects)}, "total_bytes": {"N": str(header.total_bytes)},
            "pages": {"N": str(header.pages)}, "extent": {"N": str(header.extent)},
            "generation": {"N": str(header.generation)}, "timestamp": {"N": str(int(self._clock()))}}
        if header.owner is not None:
            item["owner"] = {"S": header.owner}
        if header.lease_expires is not None:
            item["lease_expires"] = {"N": str(header.lease_expires)}
        return item

    def _get(self, key: dict[str, Any]) -> dict[str, Any] | None:
        item: dict[str, Any] | None = self._items._call("get_item", Key=key, ConsistentRead=True).get("Item")
        return item

    def _header_key(self) -> dict[str, Any]:
        return {"job_id": {"S": header_id(self.job_id)}}

    def _page_key(self, n: int) -> dict[str, Any]:
        return {"job_id": {"S": page_id(self.job_id, n)}}


def header_id(job_id: str) -> str:
    return f"{job_id}!plan"


def page_id(job_id: str, n: int) -> str:
    return f"{job_id}!plan!{n}"


def decode_header(item: dict[str, Any]) -> PlanHeader:
    return PlanHeader(
        run_id=item["run_id"]["S"], state=PlanState(item["state"]["S"]), objects=int(item["objects"]["N"]),
        total_bytes=int(item["total_bytes"]["N"]), pages=int(item["pages"]["N"]), extent=int(item["extent"]["N"]),
        generation=int(item["generation"]["N"]), owner=item["owner"]["S"] if "owner" in item else None,
        lease_expires=float(item["lease_expires"]["N"]) if "lease_expires" in item else None)


def decode_page(item: dict[str, Any]) -> Iterator[ObjectEntry]:
    """A page item's entries, in plan order."""
    for bucket, key, size, etag, modified in json.loads(zlib.decompress(item["entries"]["B"])):
        yield ObjectEntry(bucket, key, size, etag, datetime.fromisoformat(modified))
