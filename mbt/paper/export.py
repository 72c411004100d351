r"""Findings as plain tables a reader can download: one row per comparison, every number in its own column.

:func:`findings_frame` turns one chapter's findings into a table; :func:`records_frame` turns the recorded
findings of every pair (what the "Paper vs ours" page shows) into one long table. Both keep the numbers
unformatted (the effect and its interval as floats), next to the texts the book shows.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mbt.paper.findings import Finding
from mbt.paper.headlines import BY_ID, HEADLINES

__all__ = ["FINDING_COLUMNS", "RECORD_COLUMNS", "findings_frame", "records_frame"]

FINDING_COLUMNS: tuple[str, ...] = (
    "headline", "chapter", "claim", "paper", "paper_model", "ours", "effect", "ci_low", "ci_high", "level",
    "verdict", "mde", "n", "unit", "rule", "note", "same_as")
"""Columns of :func:`findings_frame` (``same_as``: the headline of the row this one repeats, else empty)."""

RECORD_COLUMNS: tuple[str, ...] = ("pair", "number", *FINDING_COLUMNS)
"""Columns of :func:`records_frame` (``number``: the row of the "Paper vs ours" table, 1-based)."""


def _verdict(value: Any) -> str:
    return "" if value in (None, "") else str(getattr(value, "value", value))


def _row(hid: str, f: Mapping[str, Any], same_as: str = "") -> dict[str, Any]:
    h = BY_ID[hid]
    return {"headline": hid, "chapter": h.chapter, "claim": h.claim, "paper": h.paper,
            "paper_model": f"{h.model}; {h.where}", "ours": f.get("ours", ""), "effect": f.get("effect"),
            "ci_low": f.get("ci_low"), "ci_high": f.get("ci_high"), "level": f.get("level"),
            "verdict": _verdict(f.get("verdict")), "mde": f.get("mde"), "n": f.get("n"), "unit": f.get("unit", ""),
            "rule": f.get("rule", ""), "note": f.get("note", ""), "same_as": same_as}


def findings_frame(findings: Sequence[Finding]) -> pd.DataFrame:
    """One row per headline a chapter's findings stand for (:data:`FINDING_COLUMNS`).

    A finding that stands for several headlines (``also``) gives one row per headline, the extra ones with
    ``same_as`` naming the first, as the book's collected table lists them.

    Args:
        findings: One chapter's findings (e.g. :func:`mbt.paper.divergence_findings`).
    """
    rows = []
    for f in findings:
        data = dataclasses.asdict(f)
        rows.append(_row(f.id, data))
        rows += [_row(alias, data, same_as=f.id) for alias in f.also]
    return pd.DataFrame(rows, columns=list(FINDING_COLUMNS))


def records_frame(records: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> pd.DataFrame:
    """Every recorded finding of every pair, in the order of the "Paper vs ours" table (:data:`RECORD_COLUMNS`).

    Args:
        records: ``{pair label: {headline id: finding dict}}`` (:func:`mbt.paper.store.collect_records`);
            a headline a pair did not record is left out (no row says "not run").
    """
    rows = []
    for pair, found in records.items():
        for number, h in enumerate(HEADLINES, start=1):
            f = found.get(h.id)
            if f is None:
                continue
            rows.append({"pair": pair, "number": number, **_row(h.id, f, same_as=str(f.get("same_as") or ""))})
    return pd.DataFrame(rows, columns=list(RECORD_COLUMNS))
