"""Decompression of the object's byte stream: gzip, zstd, bz2 or none, by extension or magic bytes.

A compressed stream is entered in the middle only at a seek point (seekpoints.py): a resume at
decompressed offset N starts at the last point at or below N that its checkpoint kept, and discards
the bytes between that point and N. gzip is read with rapidgzip (gzip_blocks.py), which reports where
its deflate blocks start, so a gzip point lies no further back than 1/64 of N or 64 MiB; zstd
frames, bz2 streams and gzip members are points too (multi-frame and multi-member objects), but a
single zstd frame or bz2 stream has no point after its start: its resume reads it from byte 0
(measured in docs/benchmarks.md).
Concatenated members/frames/streams (as `cat a.gz b.gz` makes) are read through. This module's
zlib/zstandard/bz2 loop is the reference the other paths are tested against.
"""

from __future__ import annotations

import bz2
import contextlib
import itertools
import zlib
from collections.abc import Callable, Iterator
from typing import Protocol

import zstandard

from csvkafka_worker.errors import BadInput, Reason
from csvkafka_worker.seekpoints import Kind, SeekIndex, SeekPoint, enter_deflate
from csvkafka_worker.spec import Compression

MAGIC = ((b"\x1f\x8b", Compression.GZIP), (b"\x28\xb5\x2f\xfd", Compression.ZSTD), (b"BZh", Compression.BZ2))
EXTENSIONS = {".gz": Compression.GZIP, ".gzip": Compression.GZIP, ".zst": Compression.ZSTD,
              ".zstd": Compression.ZSTD, ".bz2": Compression.BZ2}
# A gzip member ends with CRC-32 and size; a resume inside the member cannot check them.
GZIP_TRAILER = 8
START = SeekPoint(Kind.STREAM, 0, 0)


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


DECODER_ERRORS: tuple[type[Exception], ...] = (zlib.error, OSError, EOFError, zstandard.ZstdError)


@contextlib.contextmanager
def corrupt_as_bad_input(compression: Compression, uri: str, errors: tuple[type[Exception], ...] = DECODER_ERRORS
                         ) -> Iterator[None]:
    """Turns a decoder's error into the one line that names the object and the fix."""
    try:
        yield
    except errors as error:
        raise BadInput(f"{uri} is not valid {compression} data ({error}); set source.compression to match "
                       "the file", reason=Reason.SOURCE_CORRUPT) from error


def truncated(compression: Compression, uri: str) -> BadInput:
    return BadInput(f"{uri} ends in the middle of a {compression} stream (truncated upload?); upload the whole "
                    "file again", reason=Reason.SOURCE_CORRUPT)


def decompressed(chunks: Iterator[bytes], compression: Compression, uri: str, *, at: SeekPoint = START,
                 index: SeekIndex | None = None) -> Iterator[bytes]:
    """The decompressed stream of `chunks` (which start at stream point `at`); raises BadInput on corrupt
    or truncated data. Each member/frame/stream start after the first goes to `index`."""
    if compression is Compression.NONE:
        yield from chunks
        return
    factory = FACTORIES[compression]
    decoder, fed = factory(), False
    consumed, produced = at.byte, at.offset
    with corrupt_as_bad_input(compression, uri):
        for chunk in chunks:
            data = chunk
            consumed += len(chunk)
            while data:
                fed = True
                out = decoder.decompress(data)
                if out:
                    produced += len(out)
                    yield out
                data = b""
                if decoder.eof:
                    # Another member/frame/stream may follow in the same object.
                    data = decoder.unused_data
                    decoder, fed = factory(), False
                    if index is not None:
                        index.add(SeekPoint(Kind.STREAM, 8 * (consumed - len(data)), produced))
        if fed and not decoder.eof:
            raise truncated(compression, uri)


def from_deflate_point(chunks: Iterator[bytes], point: SeekPoint, uri: str, index: SeekIndex | None = None
                       ) -> Iterator[bytes]:
    """The decompressed stream from a deflate block inside a gzip member (`chunks` start at its byte):
    the rest of that member, then the members after it."""
    decoder = zlib.decompressobj(wbits=-15, zdict=point.window) if point.window else zlib.decompressobj(wbits=-15)
    consumed, produced = point.byte, point.offset
    first = True
    with corrupt_as_bad_input(Compression.GZIP, uri):
        for chunk in chunks:
            consumed += len(chunk)
            out = decoder.decompress(enter_deflate(point.bit, chunk) if first else chunk)
            first = False
            produced += len(out)
            if out:
                yield out
            if decoder.eof:
                rest = decoder.unused_data
                after = consumed - len(rest) + GZIP_TRAILER
                members = skip(itertools.chain([rest], chunks), GZIP_TRAILER)
                following = SeekPoint(Kind.STREAM, 8 * after, produced)
                if index is not None:
                    index.add(following)
                yield from decompressed(members, Compression.GZIP, uri, at=following, index=index)
                return
    if not first:
        raise truncated(Compression.GZIP, uri)


def skip(stream: Iterator[bytes], count: int) -> Iterator[bytes]:
    """Drops the first `count` bytes of a stream."""
    for chunk in stream:
        if count >= len(chunk):
            count -= len(chunk)
            continue
        yield chunk[count:] if count else chunk
        count = 0
