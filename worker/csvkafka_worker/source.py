"""Reading an S3 object as a stream of chunks, with ranged GETs, from any byte offset.

A background thread streams each range's body in pieces of `piece_bytes` into a queue while the
caller works, so network and CPU overlap; memory stays constant whatever the object's size (at most
`prefetch` pieces wait in the queue). Ranges are large (one GET per `range_bytes`: fewer requests,
less per-request latency); a GET that fails, is throttled or whose body breaks off is requested
again from where it broke off, within the S3 retry budget (retry.py). Every GET names the ETag seen
at the start (If-Match): an object overwritten during the import is never read half old, half new.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import ClientError

from csvkafka_worker import aws
from csvkafka_worker.errors import BadInput, Infrastructure, Reason, WorkerError
from csvkafka_worker.retry import Retrier


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class SourceChanged(BadInput):
    """The object's ETag is no longer the one this import started with."""

    def __init__(self, uri: str, etag: str, now: str | None = None) -> None:
        seen = f"ETag {etag} → {now}" if now else f"ETag is no longer {etag}"
        super().__init__(f"{uri} was overwritten since this import started ({seen}); the rows delivered so far "
                         "are in the checkpoint. Reset the import to load the new version (kubectl csvimport "
                         "reset, or csvkafka checkpoint delete), or restore the old version",
                         reason=Reason.SOURCE_CHANGED)


def s3_client(budget: float) -> Any:
    return aws.client("s3", budget, connect=10, read=60, max_pool_connections=8)


def head(client: Any, bucket: str, key: str, retrier: Retrier) -> ObjectInfo:
    try:
        response = retrier.call(lambda: client.head_object(Bucket=bucket, Key=key), aws.transient,
                                f"HEAD s3://{bucket}/{key}")
    except ClientError as error:
        raise refused(error, f"s3://{bucket}/{key}", "HEAD") from error
    return ObjectInfo(bucket, key, int(response["ContentLength"]), str(response.get("ETag", "")).strip('"'))


def refused(error: ClientError, uri: str, what: str) -> WorkerError:
    """The worker's error for an S3 answer that another attempt would not change."""
    code = aws.error_code(error)
    if code in ("404", "NoSuchKey", "NotFound"):
        return BadInput(f"source object {uri} does not exist; check source.uri (bucket, key, and the region of the "
                        "bucket)", reason=Reason.SOURCE_NOT_FOUND)
    if code in ("403", "AccessDenied", "Forbidden"):
        return BadInput(f"access to {uri} is denied; grant s3:GetObject on it to the worker's role (IRSA)",
                        reason=Reason.SOURCE_ACCESS_DENIED)
    return Infrastructure(f"S3 refused {what} {uri}: {error}", reason=Reason.S3_UNAVAILABLE)


class ReadInterrupted(Exception):
    """The worker was asked to stop while it waited for S3 (a SIGTERM during an outage)."""


class RangedReader:
    """Yields the object's bytes from `start` to `end` (exclusive) in order, prefetching ahead.

    While it waits for S3, a set `interrupt` ends the read with ReadInterrupted (checked every
    `INTERRUPT_POLL` seconds), so a SIGTERM during an outage does not wait out the retry budget.
    """

    INTERRUPT_POLL = 0.2

    def __init__(self, client: Any, info: ObjectInfo, retrier: Retrier, *, range_bytes: int = 64 * 1024 * 1024,
                 piece_bytes: int = 1024 * 1024, prefetch: int = 8, interrupt: threading.Event | None = None
                 ) -> None:
        self._client = client
        self._info = info
        self._retrier = retrier
        self._interrupt = interrupt or threading.Event()
        self._range_bytes = range_bytes
        self._piece_bytes = min(piece_bytes, range_bytes)
        self._prefetch = prefetch

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        stop = self._info.size if end is None else min(end, self._info.size)
        if start >= stop:
            return
        pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=self._prefetch)
        cancelled = threading.Event()

        def hand_over(item: bytes | BaseException | None) -> bool:
            while not cancelled.is_set():
                try:
                    pieces.put(item, timeout=self.INTERRUPT_POLL)
                    return True
                except queue.Full:
                    continue
            return False

        def fetch_all() -> None:
            try:
                for first in range(start, stop, self._range_bytes):
                    for piece in self._fetch(first, min(first + self._range_bytes, stop), cancelled):
                        if not hand_over(piece):
                            return
                hand_over(None)
            except BaseException as error:  # handed to the consumer, which re-raises it
                hand_over(error)

        # A daemon: once cancelled it ends by itself (at most one read timeout later), unwaited for.
        threading.Thread(target=fetch_all, name="s3-prefetch", daemon=True).start()
        try:
            while True:
                try:
                    item = pieces.get(timeout=self.INTERRUPT_POLL)
                except queue.Empty:
                    if self._interrupt.is_set():
                        raise ReadInterrupted(self._info.uri) from None
                    continue
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()

    def _fetch(self, first: int, stop: int, cancelled: threading.Event) -> Iterator[bytes]:
        """The bytes [first, stop) in pieces, from one GET, or more if the body breaks off."""
        at = first
        streak = self._retrier.streak(f"reading {self._info.uri} at byte {first}")
        while at < stop and not cancelled.is_set():
            try:
                response = self._client.get_object(Bucket=self._info.bucket, Key=self._info.key,
                                                   Range=f"bytes={at}-{stop - 1}", IfMatch=f'"{self._info.etag}"')
                body = response["Body"]
                while at < stop:
                    piece = body.read(min(self._piece_bytes, stop - at))
                    if not piece:
                        break
                    at += len(piece)
                    streak.succeeded()
                    yield piece
                if at < stop:
                    raise ConnectionError(f"the response ended at byte {at} of {stop}")
            except Exception as error:
                if isinstance(error, ClientError) and aws.error_code(error) in ("PreconditionFailed", "412"):
                    raise SourceChanged(self._info.uri, self._info.etag) from error
                kind = aws.transient(error)
                if kind is None:
                    if isinstance(error, ClientError):
                        raise refused(error, self._info.uri, f"GET (byte {at})") from error
                    raise
                streak.failed(error, kind)
