"""Rows of an emissions CSV that may hold several blocks, each read by its own header.

A file can hold more than one schema: CodeCarbon 2.x appending to our file (or the other way
round) writes its own header line and rows with its own, shorter, columns. Reading those rows
with the first header would put each value under another column's name, so every line that
names all the required columns starts a new block, and the rows after it are read with it.
A row whose field count matches neither its block's header nor another header of the file is
skipped and counted, never guessed at: `Skipped` says which lines and why.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass, field
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


def rows(
    path: Path, required: tuple[str, ...], skipped: Skipped
) -> Iterator[tuple[dict[str, str], list[str]]]:
    """Each data row of `path` as a dict by its block's header, with that header.

    The first line must be a header (a ValueError naming the missing columns otherwise). Rows
    that fit no header go to `skipped`; blank lines are not rows.
    """
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, [])
        missing = [c for c in required if c not in header]
        if missing:
            raise ValueError(
                f"{str(path)!r} is not a carbonmeter or CodeCarbon emissions CSV: no "
                f"{', '.join(missing)} column{'s' if len(missing) > 1 else ''}"
            )
        # Headers of this file by field count: a row that fits an earlier block's header (its
        # writer appended after the other's block) is still read by its own columns.
        headers = {len(header): header}
        end = reader.line_num
        for fields in reader:
            # A quoted cell may span lines: the record starts on the line after the last one.
            start, end = end + 1, reader.line_num
            if not fields:
                continue
            if is_header(fields, required):
                header = fields
                headers[len(fields)] = fields
                continue
            names = header if len(fields) == len(header) else headers.get(len(fields))
            if names is None:
                skipped.lines.append((start, len(fields)))
                skipped.header_fields = set(headers)
                continue
            yield dict(zip(names, fields, strict=True)), names
