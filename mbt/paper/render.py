r"""Rendering findings: the chapter tables, the collected "Paper vs ours" table, the conventions table.

Everything here turns data into Markdown; nothing computes a number.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mbt.metrics.conventions import PRESETS, Conventions
from mbt.paper.findings import Finding, convergence_findings, divergence_findings
from mbt.paper.headlines import BY_ID, HEADLINES, TITLES
from mbt.paper.records import record

__all__ = [
    "compare_conventions",
    "conventions_markdown",
    "conventions_sentence",
    "paper_vs_ours_markdown",
    "report",
]


def _mark(agrees: bool | None) -> str:
    return "—" if agrees is None else ("yes" if agrees else "no")


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _sentence(findings: Sequence[Finding], pair: str) -> str:
    agree = [f for f in findings if f.agrees is True]
    differ = [f for f in findings if f.agrees is False]
    other = [f for f in findings if f.agrees is None]
    where = f" on `{pair}`" if pair else ""
    if not agree and not differ:
        return f"None of these numbers can be compared directly{where}; they are shown for scale only."
    n = len(agree) + len(differ)
    parts = [f"{len(agree)} of {n} comparable claim{'s' if n != 1 else ''} hold{'s' if n == 1 else ''}{where}"]
    if agree:
        parts[0] += ": " + "; ".join(dict.fromkeys(BY_ID[f.id].claim for f in agree))
    if differ:
        parts.append("Not reproduced: " + "; ".join(dict.fromkeys(f"{BY_ID[f.id].claim} — {f.note}"
                                                                   for f in differ)))
    if other:
        parts.append(f"{len(other)} more number{'s are' if len(other) != 1 else ' is'} shown for scale only")
    return ". ".join(parts) + "."


def report(findings: Sequence[Finding], *, pair: str = "", settings: Mapping[str, Any] | None = None) -> Any:
    """Record findings (see :func:`record`) and render them: a paper-vs-ours table and a computed sentence.

    Returns:
        An ``IPython.display.Markdown`` object (a notebook shows it as formatted text), or the
        Markdown string when IPython is missing.
    """
    findings = list(findings)
    record(findings, pair=pair, settings=settings)
    lines = ["| claim | paper (model) | ours | agrees? | why |", "|---|---|---|---|---|"]
    for f in findings:
        h = BY_ID[f.id]
        lines.append(f"| {_md_cell(h.claim)} | {_md_cell(h.paper)} ({_md_cell(h.model)}) | {_md_cell(f.ours)} | "
                     f"{_mark(f.agrees)} | {_md_cell(f.note)} |")
    text = "\n".join(lines) + "\n\n" + _sentence(findings, pair)
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return text
    return Markdown(text)


def paper_vs_ours_markdown(records: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The book's "Paper vs ours" table: every headline, the paper's value and ours for each recorded pair.

    Args:
        records: ``{pair label: {headline id: finding dict}}`` (see :func:`read_records`).

    Returns:
        A Markdown table (MyST) with one row per :data:`HEADLINES` entry.
    """
    pairs = list(records)
    head = ["#", "claim", "paper", "paper's model", *[f"ours: `{p}`" for p in pairs], "how ours is computed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, h in enumerate(HEADLINES, start=1):
        cells = [str(i), _md_cell(h.claim), _md_cell(h.paper), _md_cell(f"{h.model}; {h.where}")]
        for p in pairs:
            f = records[p].get(h.id)
            if f is None:
                cells.append("not run")
            else:
                verdict = {True: " ✓", False: " ✗", None: ""}[f.get("agrees")]
                cells.append(_md_cell(f"{f.get('ours', '')}{verdict}"))
        cells.append(f"[{TITLES[h.chapter]}](../notebooks/{h.chapter}.ipynb): {_md_cell(h.how)}")
        lines.append("| " + " | ".join(cells) + " |")
    legend = ("✓ the paper's claim holds on that pair, ✗ it does not, no mark: shown for scale only "
              "(the paper's number was lost, or the quantity depends on model size or set-up).")
    return "\n".join(lines) + "\n\n" + legend + "\n"


def compare_conventions(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The representation claims under several convention presets, side by side.

    Args:
        frames: ``{preset: analyze table of one dataset}``, e.g. ``{"standard": ..., "paper": ...}``.

    Returns:
        One row per claim (Fig. 1 and Fig. 2 findings), with ``claim``, per preset ``<preset>: ours``
        and ``<preset>: agrees``, and ``survives`` — the verdict is the same under every preset.
    """
    per: dict[str, dict[str, Finding]] = {}
    for name, frame in frames.items():
        found = divergence_findings(frame) + convergence_findings(frame)
        per[name] = {f.id: f for f in found}
    ids = [h.id for h in HEADLINES if any(h.id in p for p in per.values())]
    rows = []
    for hid in ids:
        row: dict[str, Any] = {"claim": BY_ID[hid].claim}
        verdicts = []
        for name in frames:
            f = per[name].get(hid)
            row[f"{name}: ours"] = f.ours if f else "—"
            row[f"{name}: agrees"] = _mark(f.agrees if f else None)
            verdicts.append(f.agrees if f else None)
        known = [v for v in verdicts if v is not None]
        row["same verdict"] = "—" if len(known) < len(verdicts) else ("yes" if len(set(known)) == 1 else "NO")
        rows.append(row)
    return pd.DataFrame(rows)


def conventions_sentence(table: pd.DataFrame) -> str:
    """One sentence on a :func:`compare_conventions` table: which conclusions survive the change of preset."""
    judged = table[table["same verdict"] != "—"]
    flipped = judged[judged["same verdict"] == "NO"]
    if judged.empty:
        return "No claim could be judged under every preset."
    text = f"{len(judged) - len(flipped)} of {len(judged)} judged conclusions get the same verdict under every preset"
    if len(flipped):
        text += "; these change with the conventions: " + "; ".join(flipped["claim"]) + "."
    else:
        text += ": on this pair the paper's conventions do not change any conclusion, only the numbers."
    return text


def conventions_markdown() -> str:
    """A table of every :class:`mbt.metrics.Conventions` field: ``standard`` value, ``paper`` value, meaning.

    Generated from the presets and the class docstring, so the methods chapter never drifts from the code.
    """
    doc = inspect.getdoc(Conventions) or ""
    meanings: dict[str, str] = {}
    current = None
    for line in doc.split("Attributes:", 1)[-1].splitlines():
        m = re.match(r"^ {4}(\w+): (.*)$", line)
        if m:
            current = m.group(1)
            meanings[current] = m.group(2).strip()
        elif current and line.startswith(" " * 8):
            meanings[current] += " " + line.strip()
    std, pap = PRESETS["standard"], PRESETS["paper"]
    lines = ["| field | `standard` | `paper` | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Conventions):
        if f.name == "name":
            continue
        a, b = getattr(std, f.name), getattr(pap, f.name)
        flag = "" if a == b else " **≠**"
        meaning = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", meanings.get(f.name, "")).replace("``", "`")
        lines.append(f"| `{f.name}` | `{a!r}` | `{b!r}`{flag} | {_md_cell(meaning)} |")
    return "\n".join(lines) + "\n"


def inspect_doc(obj: Any) -> str:
    """``obj``'s docstring with its indentation normalised."""
    import inspect

    return inspect.getdoc(obj) or ""
