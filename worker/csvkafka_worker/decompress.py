"""Decompression of the object's byte stream: gzip, zstd, bz2 or none, by extension or magic bytes.

Compressed streams cannot be entered in the middle, so resuming at decompressed offset N reads the
object from its start and discards the first N decompressed bytes: no row is produced twice, but
the cost of a resume grows with its position (measured in docs/benchmarks.md). Concatenated
members/frames/streams (as `cat a.gz b.gz` makes) are read through.
"""

from __future__ import annotations

import bz2
import zlib
from collections.abc import Callable, Iterator
from typing import Protocol

import zstandard

from csvkafka_worker.errors import BadInput, Reason
from csvkafka_worker.spec import Compression

MAGIC = ((b"\x1f\x8b", Compression.GZIP), (b"\x28\xb5\x2f\xfd", Compression.ZSTD), (b"BZh", Compression.BZ2))
EXTENSIONS = {".gz": Compression.GZIP, ".gzip": Compression.GZIP, ".zst": Compression.ZSTD,
              ".zstd": Compression.ZSTD, ".bz2": Compression.BZ2}


def detect(key: str, first_bytes: bytes, configured: Compression) -> Compression:
    if configured is not Compression.AUTO:
        return configured
    for extension, compression in EXTENSIONS.items():
        if key.lower().endswith(extension):
            return compression
    for magic, compression in MAGIC:
        if first_bytes.startswith(magic):
            return compression
    return Compression.NONE


class _Decompressor(Protocol):
    @property
    def eof(self) -> bool: ...

    @property
    def unused_data(self) -> bytes: ...

    def decompress(self, data: bytes) -> bytes: ...


FACTORIES: dict[Compression, Callable[[], _Decompressor]] = {
    Compression.GZIP: lambda: zlib.decompressobj(wbits=31),
    Compression.ZSTD: lambda: zstandard.ZstdDecompressor().decompressobj(),
    Compression.BZ2: bz2.BZ2Decompressor,
}


def decompressed(chunks: Iterator[bytes], compression: Compression, uri: str) -> Iterator[bytes]:
    """The decompressed stream of `chunks`; raises BadInput on corrupt or truncated data."""
    if compression is Compression.NONE:
        yield from chunks
        return
    factory = FACTORIES[compression]
    decoder, fed = factory(), False
    try:
        for chunk in chunks:
            data = chunk
            while data:
                fed = True
                out = decoder.decompress(data)
                if out:
                    yield out
                data = b""
                if decoder.eof:
                    # Another member/frame/stream may follow in the same object.
                    data = decoder.unused_data
                    decoder, fed = factory(), False
        if fed and not decoder.eof:
            raise BadInput(f"{uri} ends in the middle of a {compression} stream (truncated upload?); "
                           "upload the whole file again", reason=Reason.SOURCE_CORRUPT)
    except (zlib.error, OSError, EOFError, zstandard.ZstdError) as error:
        raise BadInput(f"{uri} is not valid {compression} data ({error}); set source.compression to match "
                       "the file", reason=Reason.SOURCE_CORRUPT) from error


def skip(stream: Iterator[bytes], count: int) -> Iterator[bytes]:
    """Drops the first `count` bytes of a stream."""
    for chunk in stream:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0
