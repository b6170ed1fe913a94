"""Reading an S3 object as a stream of chunks, with ranged GETs, from any byte offset.

A background thread streams each range's body in pieces of `piece_bytes` into a queue while the
caller works, so network and CPU overlap; memory stays constant whatever the object's size (at most
`prefetch` pieces wait in the queue). Ranges are large (one GET per `range_bytes`: fewer requests,
less per-request latency); each GET is retried by botocore on throttling and transient errors, and
a range whose body breaks off is re-requested from where it broke off.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from csvkafka_worker.errors import BadInput, Infrastructure, Reason


@dataclass(frozen=True)
class ObjectInfo:
    bucket: str
    key: str
    size: int
    etag: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def s3_client() -> Any:
    import boto3
    from botocore.config import Config

    config = Config(retries={"max_attempts": 8, "mode": "adaptive"}, connect_timeout=10, read_timeout=60,
                    max_pool_connections=8)
    return boto3.client("s3", config=config)


def head(client: Any, bucket: str, key: str) -> ObjectInfo:
    try:
        response = client.head_object(Bucket=bucket, Key=key)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchKey", "NotFound"):
            raise BadInput(f"source object s3://{bucket}/{key} does not exist; check source.uri "
                           "(bucket, key, and the region of the bucket)", reason=Reason.SOURCE_NOT_FOUND) from error
        if code in ("403", "AccessDenied", "Forbidden"):
            raise BadInput(f"access to s3://{bucket}/{key} is denied; grant s3:GetObject on it to the worker's "
                           "role (IRSA)", reason=Reason.SOURCE_ACCESS_DENIED) from error
        raise Infrastructure(f"S3 HEAD s3://{bucket}/{key} failed: {error}", reason=Reason.S3_UNAVAILABLE) from error
    except BotoCoreError as error:
        raise Infrastructure(f"S3 endpoint unreachable for s3://{bucket}/{key}: {error}",
                             reason=Reason.S3_UNAVAILABLE) from error
    return ObjectInfo(bucket, key, int(response["ContentLength"]), str(response.get("ETag", "")).strip('"'))


class RangedReader:
    """Yields the object's bytes from `start` to `end` (exclusive) in order, prefetching ahead."""

    def __init__(self, client: Any, info: ObjectInfo, *, range_bytes: int = 64 * 1024 * 1024,
                 piece_bytes: int = 1024 * 1024, prefetch: int = 8) -> None:
        self._client = client
        self._info = info
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
        at, attempts = first, 0
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
                    yield piece
            except ClientError as error:
                code = error.response.get("Error", {}).get("Code", "")
                if code in ("PreconditionFailed", "412"):
                    raise BadInput(f"{self._info.uri} changed while it was being read (ETag is no longer "
                                   f"{self._info.etag}); reset the import to read the new version",
                                   reason=Reason.SOURCE_CHANGED) from error
                attempts += 1
                if attempts > 5:
                    raise Infrastructure(f"reading {self._info.uri} at byte {at} failed: {error}",
                                         reason=Reason.S3_UNAVAILABLE) from error
            except (BotoCoreError, OSError) as error:
                attempts += 1
                if attempts > 5:
                    raise Infrastructure(f"reading {self._info.uri} at byte {at} failed: {error}",
                                         reason=Reason.S3_UNAVAILABLE) from error
