"""Load receipts: what each fully delivered object counts for, and the manifest of an import's receipts.

A receipt names the object (URI and ETag), the byte range read, the rows sent, dead-lettered and
skipped, the sum (mod 2**64) of zlib.crc32 of every value sent, and per partition of the topic the
first and last offset of those values. Consumers wait for an object's receipt on the receipts topic
(keyed by the object's URI) and can check what they read against it; the manifest in S3 lists them
all at the end. The JSON has camelCase keys in a fixed order, so equal receipts are equal bytes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import reduce
from typing import Any, Protocol

import orjson
from botocore.exceptions import ClientError

from csvkafka_worker import aws, watermark
from csvkafka_worker.errors import BadInput, Infrastructure, Reason
from csvkafka_worker.retry import Retrier
from csvkafka_worker.watermark import CHECKSUM_MODULUS, Counts, Offsets

MANIFEST_URI = re.compile(r"^s3://(?P<bucket>[^/]+)/(?P<key>.+)$")


def rfc3339(moment: datetime) -> str:
    """UTC, to the millisecond, with a Z: 2026-11-30T16:30:00.123Z."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


@dataclass(frozen=True)
class Receipt:
    job_id: str
    run_id: str
    uri: str
    etag: str
    byte_start: int
    byte_end: int
    rows_sent: int
    rows_dead_lettered: int
    rows_skipped: int
    values_crc32_sum: int
    offsets: Offsets
    completed_at: datetime

    @classmethod
    def of(cls, job_id: str, run_id: str, uri: str, etag: str, byte_range: tuple[int, int], counts: Counts,
           completed_at: datetime) -> Receipt:
        """The receipt of an object (or a piece of it) whose delivered rows count for `counts`."""
        return cls(job_id, run_id, uri, etag, byte_range[0], byte_range[1], counts.sent, counts.dead_lettered,
                   counts.skipped, counts.checksum, dict(counts.offsets), completed_at)

    def to_json(self) -> dict[str, Any]:
        return {"jobId": self.job_id, "runId": self.run_id, "uri": self.uri, "etag": self.etag,
                "byteRange": {"start": self.byte_start, "end": self.byte_end},
                "rowsSent": self.rows_sent, "rowsDeadLettered": self.rows_dead_lettered,
                "rowsSkipped": self.rows_skipped, "valuesCrc32Sum": f"{self.values_crc32_sum:016x}",
                "offsets": watermark.offsets_to_json(self.offsets), "completedAt": rfc3339(self.completed_at)}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Receipt:
        return cls(str(raw["jobId"]), str(raw["runId"]), str(raw["uri"]), str(raw["etag"]),
                   int(raw["byteRange"]["start"]), int(raw["byteRange"]["end"]), int(raw["rowsSent"]),
                   int(raw["rowsDeadLettered"]), int(raw["rowsSkipped"]), int(raw["valuesCrc32Sum"], 16),
                   watermark.offsets_from_json(raw["offsets"]), _moment(raw["completedAt"]))

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json())

    @classmethod
    def decode(cls, value: bytes) -> Receipt:
        return cls.from_json(orjson.loads(value))


def merge(pieces: Iterable[Receipt]) -> Receipt:
    """The receipt of a split object from its pieces' receipts (in any order): counts and checksums
    summed, offsets widened, byte ranges joined (they must leave no gap), the latest completion."""
    ordered = sorted(pieces, key=lambda r: (r.byte_start, r.byte_end))
    if not ordered:
        raise ValueError("no receipts to merge")
    first = ordered[0]
    for piece in ordered[1:]:
        if (piece.job_id, piece.run_id, piece.uri, piece.etag) != (first.job_id, first.run_id, first.uri, first.etag):
            raise ValueError(f"cannot merge the receipt of {piece.uri} (ETag {piece.etag}, job {piece.job_id}, "
                             f"run {piece.run_id}) with that of {first.uri} (ETag {first.etag}, job {first.job_id}, "
                             f"run {first.run_id})")
    reach = first.byte_end
    for piece in ordered[1:]:
        if piece.byte_start > reach:
            raise ValueError(f"the receipts of {first.uri} leave bytes {reach}-{piece.byte_start} uncovered")
        reach = max(reach, piece.byte_end)
    return reduce(_join, ordered[1:], first)


def _join(a: Receipt, b: Receipt) -> Receipt:
    offsets = dict(a.offsets)
    watermark.merge_offsets(offsets, b.offsets)
    return replace(a, byte_start=min(a.byte_start, b.byte_start), byte_end=max(a.byte_end, b.byte_end),
                   rows_sent=a.rows_sent + b.rows_sent, rows_dead_lettered=a.rows_dead_lettered + b.rows_dead_lettered,
                   rows_skipped=a.rows_skipped + b.rows_skipped,
                   values_crc32_sum=(a.values_crc32_sum + b.values_crc32_sum) % CHECKSUM_MODULUS,
                   offsets=offsets, completed_at=max(a.completed_at, b.completed_at))


@dataclass(frozen=True)
class Manifest:
    """An import's receipts, one per object, and their totals."""

    import_name: str
    job_id: str
    run_id: str
    generated_at: datetime
    receipts: tuple[Receipt, ...] = field(default=())

    def totals(self) -> dict[str, Any]:
        return {"objects": len(self.receipts),
                "bytes": sum(r.byte_end - r.byte_start for r in self.receipts),
                "rowsSent": sum(r.rows_sent for r in self.receipts),
                "rowsDeadLettered": sum(r.rows_dead_lettered for r in self.receipts),
                "rowsSkipped": sum(r.rows_skipped for r in self.receipts),
                "valuesCrc32Sum": f"{sum(r.values_crc32_sum for r in self.receipts) % CHECKSUM_MODULUS:016x}"}

    def to_json(self) -> dict[str, Any]:
        return {"importName": self.import_name, "jobId": self.job_id, "runId": self.run_id,
                "generatedAt": rfc3339(self.generated_at), "totals": self.totals(),
                "receipts": [r.to_json() for r in self.receipts]}

    def encode(self) -> bytes:
        return orjson.dumps(self.to_json(), option=orjson.OPT_INDENT_2)

    @classmethod
    def decode(cls, value: bytes) -> Manifest:
        raw = orjson.loads(value)
        return cls(str(raw["importName"]), str(raw["jobId"]), str(raw["runId"]), _moment(raw["generatedAt"]),
                   tuple(Receipt.from_json(r) for r in raw["receipts"]))


def write_manifest(s3: Any, uri: str, manifest: Manifest, retrier: Retrier) -> None:
    """Puts the manifest's JSON at `uri` (s3://bucket/key), retrying within the S3 budget."""
    match = MANIFEST_URI.match(uri)
    if match is None:
        raise BadInput(f"receipts.manifestUri {uri!r} is not of the form s3://bucket/key",
                       reason=Reason.INVALID_CONFIGURATION)
    bucket, key = match["bucket"], match["key"]
    body = manifest.encode()
    try:
        retrier.call(lambda: s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json"),
                     aws.transient, f"PUT {uri}")
    except ClientError as error:
        code = aws.error_code(error)
        if code in ("403", "AccessDenied", "Forbidden"):
            raise BadInput(f"writing the manifest to bucket {bucket!r}, key {key!r} is denied; grant s3:PutObject "
                           f"on arn:aws:s3:::{bucket}/{key} to the worker's role (IRSA), or change "
                           "receipts.manifestUri", reason=Reason.INVALID_CONFIGURATION) from error
        if code in ("404", "NoSuchBucket"):
            raise BadInput(f"the manifest's bucket {bucket!r} does not exist; check receipts.manifestUri",
                           reason=Reason.INVALID_CONFIGURATION) from error
        raise Infrastructure(f"S3 refused PUT {uri}: {error}", reason=Reason.S3_UNAVAILABLE) from error


class Producer(Protocol):
    def produce(self, topic: str, value: bytes, key: bytes, on_delivery: Callable[..., None] | None = None) -> None: ...


def produce_receipt(producer: Producer, topic: str, receipt: Receipt,
                    on_delivery: Callable[..., None] | None = None) -> None:
    """Sends the receipt keyed by its object's URI; in exactly-once mode, into the open transaction of
    the object's last rows (the caller commits it with them)."""
    producer.produce(topic, value=receipt.encode(), key=receipt.uri.encode(), on_delivery=on_delivery)
