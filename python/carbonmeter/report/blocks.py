"""Rows of an emissions CSV that may hold several blocks, each read by its own header, streamed.

A file can hold more than one schema: CodeCarbon 2.x appending to our file (or the other way
round) writes its own header line and rows with its own, shorter, columns. Reading those rows
with the first header would put each value under another column's name, so every line that
names all the required columns starts a new block, and the rows after it are read with it.
A row whose field count matches neither its block's header nor another header of the file is
skipped and counted, never guessed at: `Skipped` says which lines and why.

The file is read a line at a time and no row is kept (issue 33: a million rows read in seconds
and a few MB). Most lines are cut with `str.split` up to the last column the caller asks for
(`Block.cut`), which is several times faster than the `csv` module; a line the quick cut cannot
read exactly (more than one quoted cell, an escaped quote, a cell over several lines) goes
through `csv`, so every line reads as `csv` would read it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path

# Line numbers a warning names before it says "and N more".
SHOWN_LINES = 5


@dataclass
class Skipped:
    """Rows of one file left out: their line numbers and field counts, and the headers'."""

    path: str
    lines: list[tuple[int, int]] = field(default_factory=list)
    header_fields: set[int] = field(default_factory=set)

    def message(self) -> str:
        """One line: how many rows, why, and the first few line numbers."""
        shown = ", ".join(f"{line} ({count} fields)" for line, count in self.lines[:SHOWN_LINES])
        more = len(self.lines) - SHOWN_LINES
        expected = " or ".join(str(n) for n in sorted(self.header_fields))
        return (
            f"{self.path!r}: skipped {len(self.lines)} row{'s' if len(self.lines) != 1 else ''} "
            f"whose field count matches no header of the file ({expected} fields): "
            f"line{'s' if len(self.lines) != 1 else ''} {shown}"
            + (f" and {more} more" if more > 0 else "")
        )


def is_header(fields: list[str], required: tuple[str, ...]) -> bool:
    """A header line: it names every required column (no data row does)."""
    names = set(fields)
    return all(column in names for column in required)


@dataclass
class Block:
    """One header of a file: its columns, where each is, and how far a quick cut must go."""

    header: list[str]
    at: dict[str, int]
    # The wanted columns of a row's head, in order ("" for one this header lacks).
    wanted: Callable[[list[str]], tuple[str, ...]]
    # The fields `Row.head` holds exactly: up to the last column the caller wants, and one
    # empty cell after them that the missing columns point at.
    cut: int

    @classmethod
    def of(cls, header: list[str], wanted: tuple[str, ...]) -> Block:
        at = {name: i for i, name in enumerate(header)}
        cut = 1 + max((at[n] for n in wanted if n in at), default=0)
        where = [at.get(n, -1) for n in wanted]
        if len(where) < 2:
            where += [-1] * (2 - len(where))  # itemgetter of one index gives a bare cell
        return cls(header, at, itemgetter(*where), cut)

    def cells(self, record: str) -> dict[str, str]:
        """Every column of `record` by name (read with `csv`)."""
        return dict(zip(self.header, _parse(record), strict=True))


def _cut(line: str, n: int) -> tuple[list[str], int] | None:
    """The first `n` fields of a one-line record (and maybe one more piece, the rest of the
    line), and its field count; None when only `csv` can read it exactly."""
    quotes = line.count('"')
    if quotes == 0:
        return line.split(",", n), line.count(",") + 1
    if quotes != 2:
        return None
    pre, inside, post = line.split('"')
    if (pre and pre[-1] != ",") or (post and post[0] != ","):
        return None  # a quote inside a cell, not around it
    at = pre.count(",")  # the quoted cell's index
    count = at + post.count(",") + 1
    if n <= at:
        return pre.split(",", n), count
    return [*pre.split(",")[:at], inside, *post.split(",", n - at)[1:]], count


def _parse(record: str) -> list[str]:
    return next(csv.reader(io.StringIO(record)), [])


# One data row: its block, its first fields (`Block.cut` of them, exact, then "";
# `block.wanted(head)` picks the wanted ones), the record (`Block.cells` reads it whole) and
# its line.
Row = tuple[Block, list[str], str, int]


def _records(handle: Iterator[str]) -> Iterator[tuple[int, str]]:
    """Each record with the number of its first line: lines joined while a quoted cell is open."""
    number = 0
    for line in handle:
        number += 1
        if line.count('"') % 2:
            start, pending = number, [line]
            for more in handle:
                number += 1
                pending.append(more)
                if more.count('"') % 2:
                    break
            yield start, "".join(pending).rstrip("\r\n")
        else:
            yield number, line.rstrip("\r\n")


def rows(
    path: Path, required: tuple[str, ...], skipped: Skipped, wanted: tuple[str, ...] = ()
) -> Iterator[Row]:
    """Each data row of `path`, read by its block's header, one at a time.

    The first line must be a header (a ValueError naming the missing columns otherwise). Rows
    that fit no header go to `skipped`; blank lines are not rows. `wanted` names the columns
    the caller reads from the row's head; any column is in `Block.cells(record)`.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        records = _records(handle)
        first = next(records, None)
        header = _parse(first[1]) if first else []
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(
                f"{str(path)!r} is not a carbonmeter or CodeCarbon emissions CSV: no "
                f"{', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
            )
        block = Block.of(header, wanted)
        # Headers of this file by field count: a row that fits an earlier block's header (its
        # writer appended after the other's block) is still read by its own columns.
        blocks = {len(header): block}
        for number, record in records:
            if not record:
                continue
            # A cheap test first: a data row names no column (a full read decides).
            if "energy_consumed" in record and "run_id" in record:
                fields = _parse(record)
                if is_header(fields, required):
                    block = Block.of(fields, wanted)
                    blocks[len(fields)] = block
                    continue
            quick = _cut(record, block.cut)
            if quick is None:
                head = _parse(record)
                count = len(head)
            else:
                head, count = quick
            fits = block if count == len(block.header) else blocks.get(count)
            if fits is None:
                skipped.lines.append((number, count))
                skipped.header_fields = set(blocks)
                continue
            if quick is None or fits is not block:
                head = _parse(record)[: fits.cut]
            head.append("")
            yield fits, head, record, number
