"""Deterministic benchmark CSV: 10 columns of mixed text and numbers, ~120 bytes a row.

The same `rows` and `seed` always give the same bytes. About a third of the names are quoted
because they hold a comma, one comment in 20 holds doubled quotes, and one row in 1,000 has a
newline inside a quoted field, so a line-based reader and a CSV reader disagree on those rows.

Beside each file a small JSON index records its size, row and line counts, and the byte offset of
every 10,000th row, so that a checkpoint can be written by hand on a record boundary.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict, dataclass
from pathlib import Path

HEADER = b"id,ref,name,email,city,amount,quantity,ordered_on,status,comment\n"
INDEX_EVERY = 10_000
BYTES_PER_ROW = 120  # close to the measured average; used to turn a target size into a row count

_FIRST = ("Anna", "Bjorn", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Keiko", "Lars",
          "Maya", "Nils", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Viktor", "Wen", "Yara")
_LAST = ("Smith", "Okafor", "Garcia", "Muller", "Rossi", "Tanaka", "Kowalski", "Nguyen", "Dubois", "Silva",
         "Andersson", "Haddad", "OBrien", "Novak", "Ivanova", "Fischer", "Moreau", "Jensen", "Costa", "Sato")
_CITIES = ("Amsterdam", "Berlin", "Cairo", "Dublin", "Edinburgh", "Frankfurt", "Geneva", "Helsinki", "Istanbul",
           "Jakarta", "Kyoto", "Lisbon", "Madrid", "Nairobi", "Oslo", "Porto", "Quito", "Reykjavik", "Seoul",
           "Toronto", "Utrecht", "Valencia", "Warsaw", "Zurich")
_STATUS = ("new", "paid", "shipped", "delivered", "returned", "cancelled")
_PLAIN = ("standard delivery", "leave at the door", "gift wrap please", "call before arrival",
          "second attempt", "no comment", "fragile items inside", "customer prefers mornings")
_QUOTED = ('"box says ""this side up"", handle with care"', '"left with neighbour, flat 2"',
           '"label reads ""FRAGILE"" twice"', '"price match, see ticket 4411"')
_MULTILINE = ('"first line of the note\nsecond line, after a break"', '"address line 1\naddress line 2"')


@dataclass(frozen=True)
class DataFile:
    """A generated CSV file and what is known about it without reading it again."""

    path: Path
    rows: int  # data rows (CSV records after the header)
    lines: int  # newline-terminated physical lines, header included
    size: int
    offsets: list[int]  # offsets[i]: byte offset where row i * INDEX_EVERY + 1 starts

    def boundary_near(self, fraction: float) -> tuple[int, int]:
        """(rows before, byte offset) of an indexed record boundary at about `fraction` of the file."""
        target = fraction * self.size
        i = min(range(len(self.offsets)), key=lambda j: abs(self.offsets[j] - target))
        return i * INDEX_EVERY, self.offsets[i]


def rows_for_bytes(size: int) -> int:
    return max(1, size // BYTES_PER_ROW)


def ensure(directory: Path, rows: int, seed: int = 1) -> DataFile:
    """The file for (rows, seed) under `directory`, generated on first use."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"rows-{rows}-seed-{seed}.csv"
    index_path = path.with_suffix(".json")
    if path.exists() and index_path.exists():
        meta = json.loads(index_path.read_text())
        if meta.get("size") == path.stat().st_size and meta.get("index_every") == INDEX_EVERY:
            return DataFile(path=path, rows=meta["rows"], lines=meta["lines"], size=meta["size"],
                            offsets=meta["offsets"])
    data = generate(path, rows, seed)
    meta = {k: v for k, v in asdict(data).items() if k != "path"}
    index_path.write_text(json.dumps({**meta, "index_every": INDEX_EVERY}))
    return data


def generate(path: Path, rows: int, seed: int) -> DataFile:
    rng = random.Random(seed)
    offsets: list[int] = []
    size = 0
    extra_lines = 0
    partial = path.with_suffix(".partial")
    with partial.open("wb") as out:
        out.write(HEADER)
        size += len(HEADER)
        row = 1
        while row <= rows:
            count = min(10_000, rows - row + 1)
            chunk: list[bytes] = []
            for i in range(row, row + count):
                if (i - 1) % INDEX_EVERY == 0:
                    offsets.append(size + sum(map(len, chunk)))
                line = _row(rng, i)
                extra_lines += line.count(b"\n") - 1
                chunk.append(line)
            block = b"".join(chunk)
            out.write(block)
            size += len(block)
            row += count
    partial.rename(path)
    return DataFile(path=path, rows=rows, lines=rows + 1 + extra_lines, size=size, offsets=offsets)


def _row(rng: random.Random, i: int) -> bytes:
    first, last = rng.choice(_FIRST), rng.choice(_LAST)
    name = f'"{last}, {first}"' if rng.random() < 0.33 else f"{first} {last}"
    pick = rng.random()
    if pick < 0.001:
        comment = rng.choice(_MULTILINE)
    elif pick < 0.05:
        comment = rng.choice(_QUOTED)
    else:
        comment = rng.choice(_PLAIN)
    text = (f"{i},{rng.getrandbits(64):016x},{name},{first.lower()}.{last.lower()}{i % 97}@example.com,"
            f"{rng.choice(_CITIES)},{rng.randrange(100, 10_000_000) / 100:.2f},{rng.randrange(1, 500)},"
            f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d},{rng.choice(_STATUS)},{comment}\n")
    return text.encode()
