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
from csvkafka_worker.errors import BadInput, Infrastructure, Reason
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
        code = aws.error_code(error)
        if code in ("404", "NoSuchKey", "NotFound"):
            raise BadInput(f"source object s3://{bucket}/{key} does not exist; check source.uri "
                           "(bucket, key, and the region of the bucket)", reason=Reason.SOURCE_NOT_FOUND) from error
        if code in ("403", "AccessDenied", "Forbidden"):
            raise BadInput(f"access to s3://{bucket}/{key} is denied; grant s3:GetObject on it to the worker's "
                           "role (IRSA)", reason=Reason.SOURCE_ACCESS_DENIED) from error
        raise Infrastructure(f"S3 refused HEAD s3://{bucket}/{key}: {error}", reason=Reason.S3_UNAVAILABLE) from error
    return ObjectInfo(bucket, key, int(response["ContentLength"]), str(response.get("ETag", "")).strip('"'))


class RangedReader:
    """Yields the object's bytes from `start` to `end` (exclusive) in order, prefetching ahead."""

    def __init__(self, client: Any, info: ObjectInfo, retrier: Retrier, *, range_bytes: int = 64 * 1024 * 1024,
                 piece_bytes: int = 1024 * 1024, prefetch: int = 8) -> None:
        self._client = client
        self._info = info
        self._retrier = retrier
        self._range_bytes = range_bytes
        self._piece_bytes = min(piece_bytes, range_bytes)
        self._prefetch = prefetch

    def chunks(self, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        stop = self._info.size if end is None else min(end, self._info.size)
        if start >= stop:
            return
        pieces: queue.Queue[bytes | BaseException | None] = queue.Queue(maxsize=self._prefetch)
        cancelled = threading.Event()

        def fetch_all() -> None:
            try:
                for first in range(start, stop, self._range_bytes):
                    for piece in self._fetch(first, min(first + self._range_bytes, stop)):
                        if cancelled.is_set():
                            return
                        pieces.put(piece)
                pieces.put(None)
            except BaseException as error:  # handed to the consumer, which re-raises it
                pieces.put(error)

        fetcher = threading.Thread(target=fetch_all, name="s3-prefetch", daemon=True)
        fetcher.start()
        try:
            while True:
                item = pieces.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            cancelled.set()
            while fetcher.is_alive():
                try:
                    pieces.get_nowait()
                except queue.Empty:
                    fetcher.join(0.05)

    def _fetch(self, first: int, stop: int) -> Iterator[bytes]:
        """The bytes [first, stop) in pieces, from one GET, or more if the body breaks off."""
        at = first
        streak = self._retrier.streak(f"reading {self._info.uri} at byte {first}")
        while at < stop:
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
                    raise
                streak.failed(error, kind)
