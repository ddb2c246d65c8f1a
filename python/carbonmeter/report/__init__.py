"""Reads emissions CSVs (carbonmeter's or CodeCarbon's) into runs, for `carbonmeter report`.

`model` holds the runs and every figure (overview, totals, what if, diff); `text` renders
Markdown and LaTeX from it, `html` the page. This module only re-exports them.

Example:
    >>> from carbonmeter import report
    >>> data = report.load(["emissions.csv"])  # doctest: +SKIP
    >>> report.to_json(data)["overview"][0]["co2_g"]  # doctest: +SKIP
"""

from __future__ import annotations

from carbonmeter.report import html, text, tradeoff
from carbonmeter.report.model import (
    Epoch,
    Equivalent,
    Experiment,
    Report,
    Run,
    band_totals,
    diff,
    equivalents,
    load,
    overview,
    to_json,
    totals,
    what_if,
)

__all__ = [
    "Epoch",
    "Equivalent",
    "Experiment",
    "Report",
    "Run",
    "band_totals",
    "diff",
    "equivalents",
    "html",
    "load",
    "overview",
    "text",
    "to_json",
    "totals",
    "tradeoff",
    "what_if",
]
