"""What a multi-object import keeps in the checkpoint table besides its shard summaries: its plan
(header and pages), every object's items (a split object's pieces), their receipts, and the
manifest's marker. Deleting the import with checkpoint retention Delete removes them all, so that an
import re-created under the same job id starts afresh. Pure: the plan's items in, the ids out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from csvkafka_operator.objects import planned
from csvkafka_worker.checkpoint import manifest_id, object_job_id, receipt_id
from csvkafka_worker.planstore import decode_header, decode_page, header_id, page_id


def page_ids(job_id: str, header: Mapping[str, Any] | None) -> list[str]:
    """The plan's page items, every one ever written (a replaced plan may have had more)."""
    if header is None:
        return []
    plan = decode_header(dict(header))
    return [page_id(job_id, n) for n in range(max(plan.pages, plan.extent))]


def kept_ids(job_id: str, header: Mapping[str, Any] | None, pages: Iterable[Mapping[str, Any]],
             shard_count: int) -> list[str]:
    """Every item of the import's objects and plan; `pages` are the plan's page items that exist."""
    entries = [entry for page in pages for entry in decode_page(dict(page))]
    ids: list[str] = []
    for planned_object in planned(job_id, entries, shard_count):
        entry = planned_object.entry
        ids += [*planned_object.item_ids, receipt_id(object_job_id(job_id, entry.bucket, entry.key))]
    ids += page_ids(job_id, header)
    if header is not None:
        ids.append(header_id(job_id))
    ids.append(manifest_id(job_id))
    return ids
