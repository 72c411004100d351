r"""Rendering findings: the chapter tables, the collected "Paper vs ours" table, the conventions table.

Everything here turns data into Markdown; nothing computes a number.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from mbt.metrics.conventions import CONVENTION_PRESETS, Conventions
from mbt.paper.findings import Finding, convergence_findings, divergence_findings, interval_text
from mbt.paper.headlines import BY_ID, HEADLINES
from mbt.paper.records import check_finding, record
from mbt.paper.verdicts import Verdict, pct, verdict_label

__all__ = [
    "compare_conventions",
    "conventions_markdown",
    "conventions_sentence",
    "paper_vs_ours_markdown",
    "report",
    "store_problems_markdown",
]


def _word(verdict: Any) -> str:
    """The verdict as a word (``holds``, ``contradicted``, ``inconclusive``), ``—`` for a scale row."""
    return "—" if verdict in (None, "") else verdict_label(verdict)


def _md_cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _claims(f: Finding) -> str:
    return " / ".join(dict.fromkeys(BY_ID[h].claim for h in f.ids))


def _papers(f: Finding) -> str:
    return "; ".join(f"{BY_ID[h].paper} ({BY_ID[h].model})" for h in f.ids)


def _mde(f: Finding) -> str:
    return "—" if f.mde is None or f.mde != f.mde else f"{f.mde:.3g}"


def _sentence(findings: Sequence[Finding], pair: str) -> str:
    """``"k hold, m contradicted, n inconclusive (of N distinct comparisons) on `pair`."`` plus what failed."""
    judged = [f for f in findings if f.verdict is not None]
    other = [f for f in findings if f.verdict is None]
    where = f" on `{pair}`" if pair else ""
    if not judged:
        return f"None of these numbers can be compared directly{where}; they are shown for scale only."
    count = {v: [f for f in judged if f.verdict == v] for v in Verdict}
    n = len(judged)
    parts = [f"{len(count[Verdict.HOLDS])} hold, {len(count[Verdict.CONTRADICTED])} contradicted, "
             f"{len(count[Verdict.INCONCLUSIVE])} inconclusive (of {n} distinct comparison{'s' if n != 1 else ''})"
             f"{where}, each at the 95 % level"]
    if count[Verdict.HOLDS]:
        parts.append("Holds: " + "; ".join(_claims(f) for f in count[Verdict.HOLDS]))
    if count[Verdict.CONTRADICTED]:
        parts.append("Contradicted: " + "; ".join(f"{_claims(f)} — {f.note}" if f.note else _claims(f)
                                                   for f in count[Verdict.CONTRADICTED]))
    if count[Verdict.INCONCLUSIVE]:
        parts.append("Inconclusive (this sample cannot tell): " + "; ".join(_claims(f)
                                                                            for f in count[Verdict.INCONCLUSIVE]))
    if other:
        parts.append(f"{len(other)} more number{'s are' if len(other) != 1 else ' is'} shown for scale only")
    return ". ".join(parts) + "."


def report(findings: Sequence[Finding], *, pair: str = "", settings: Mapping[str, Any] | None = None) -> Any:
    """Record findings (see :func:`record`) and render them: a paper-vs-ours table and a computed sentence.

    One row per distinct comparison: the claim(s), the paper's value(s) with the model, our value,
    the effect with its interval and level, the MDE, the verdict as a word and the rule.

    Returns:
        An ``IPython.display.Markdown`` object (a notebook shows it as formatted text), or the
        Markdown string when IPython is missing.
    """
    findings = list(findings)
    record(findings, pair=pair, settings=settings)
    lines = ["| claim | paper (model) | ours | effect [95 % interval] | MDE | verdict | rule and note |",
             "|---|---|---|---|---|---|---|"]
    for f in findings:
        why = "; ".join(x for x in (f.rule, f.note) if x)
        verdict = f"**{_word(f.verdict)}**" if f.verdict is not None else "shown for scale"
        lines.append("| " + " | ".join(_md_cell(c) for c in (_claims(f), _papers(f), f.ours, f.interval_text(),
                                                               _mde(f), verdict, why)) + " |")
    text = "\n".join(lines) + "\n\n" + _sentence(findings, pair)
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return text
    return Markdown(text)


_LARGE = 1e6
"""Numbers at least this large (in absolute value) are written in scientific notation, never with all digits."""


def _record_interval(f: Mapping[str, Any]) -> str:
    """The effect and interval of a stored finding (``""`` for a scale row)."""
    if f.get("effect") is None:
        return ""
    effect, low, high, level = f.get("effect"), f.get("ci_low"), f.get("ci_high"), f.get("level") or 0.95
    numbers = [abs(float(x)) for x in (effect, low, high) if x is not None and math.isfinite(float(x))]
    if numbers and max(numbers) >= _LARGE:
        def sci(x: Any) -> str:
            return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):+.4g}".replace("-", "−")

        if low is None or high is None or not (math.isfinite(float(low)) and math.isfinite(float(high))):
            return f"{sci(effect)} (no interval)"
        return f"{sci(effect)} [{sci(low)}, {sci(high)}] ({pct(float(level))})"
    return interval_text(effect, low, high, level)


def store_problems_markdown(problems: Sequence[Any]) -> str:
    """The stores left out (or shown in part, or under another label) as a Markdown list; ``""`` when none.

    Args:
        problems: :class:`mbt.paper.store.StoreProblem` items (``folder``, ``reason``), each listed once.
    """
    lines = list(dict.fromkeys(f"- `{p.folder}`: {_md_cell(p.reason)}" for p in problems))
    if not lines:
        return ""
    return (f"**Results stores not shown as they are** ({len(lines)}): each was checked before it was shown "
            "(format version, its job manifests, the models it claims, every value and verdict).\n\n"
            + "\n".join(lines) + "\n")


def paper_vs_ours_markdown(records: Mapping[str, Mapping[str, Mapping[str, Any]]], *,
                           titles: Mapping[str, str] | None = None) -> str:
    """The book's "Paper vs ours" table: every headline, the paper's value and ours for each recorded pair.

    Each cell holds our value, the effect with its interval and the verdict as a word (**holds**,
    **contradicted**, **inconclusive**; none for a scale row). A headline that is the same comparison
    as an earlier row on that pair (``same_as``) points to it and is not counted again.

    Args:
        records: ``{pair label: {headline id: finding dict}}`` (see :func:`read_records`).
        titles: Chapter titles by chapter name for the links (:data:`mbt.book.chapters.TITLES`); default:
            the chapter names.

    Returns:
        A Markdown table (MyST) with one row per :data:`HEADLINES` entry.
    """
    pairs = list(records)
    number = {h.id: i for i, h in enumerate(HEADLINES, start=1)}
    head = ["#", "claim", "paper", "paper's model", *[f"ours: `{p}`" for p in pairs], "how ours is computed"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, h in enumerate(HEADLINES, start=1):
        cells = [str(i), _md_cell(h.claim), _md_cell(h.paper), _md_cell(f"{h.model}; {h.where}")]
        for p in pairs:
            f = records[p].get(h.id)
            if f is None:
                cells.append("not run")
            elif f.get("same_as") and f["same_as"] in number:
                cells.append(_md_cell(f"same comparison as #{number[f['same_as']]}"))
            elif (wrong := check_finding(f)) is not None:
                cells.append(_md_cell(f"left out: the stored finding cannot be shown ({wrong})"))
            else:
                verdict = f.get("verdict")
                interval = _record_interval(f)
                text = " — ".join(x for x in (str(f.get("ours", "")), interval) if x)
                if verdict:
                    text += f" → **{_word(verdict)}**"
                elif "agrees" in f:
                    text += " (record from before calibrated verdicts: rebuild)"
                cells.append(_md_cell(text))
        title = (titles or {}).get(h.chapter, h.chapter)
        cells.append(f"[{title}](../notebooks/{h.chapter}.ipynb): {_md_cell(h.how)}")
        lines.append("| " + " | ".join(cells) + " |")
    legend = ("**holds**: the 95 % interval of the effect lies entirely on the side the paper claims; "
              "**contradicted**: entirely on the other side; **inconclusive**: the interval straddles the "
              "threshold, so this sample cannot tell. No verdict: shown for scale only (the paper's number was "
              "lost, or the quantity depends on model size or set-up). \"same comparison as #k\": the claim maps "
              "to the same test on that pair as row k and is counted once.")
    return "\n".join(lines) + "\n\n" + legend + "\n"


def compare_conventions(frames: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """The representation claims under several convention presets, side by side.

    Args:
        frames: ``{preset: analyze table of one dataset}``, e.g. ``{"standard": ..., "paper": ...}``.

    Returns:
        One row per claim (Fig. 1 and Fig. 2 findings), with ``claim``, per preset ``<preset>: ours``
        and ``<preset>: verdict`` (a word, ``—`` for a scale row), and ``same verdict`` — ``yes`` when
        the verdict is the same under every preset, ``NO`` otherwise, ``—`` for scale rows.
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
            row[f"{name}: verdict"] = _word(f.verdict if f else None)
            verdicts.append(f.verdict if f else None)
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
    std, pap = CONVENTION_PRESETS["standard"], CONVENTION_PRESETS["paper"]
    lines = ["| field | `standard` | `paper` | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(Conventions):
        if f.name == "name":
            continue
        a, b = getattr(std, f.name), getattr(pap, f.name)
        flag = "" if a == b else " **≠**"
        meaning = re.sub(r":\w+:`~?([^`]+)`", r"`\1`", meanings.get(f.name, "")).replace("``", "`")
        lines.append(f"| `{f.name}` | `{a!r}` | `{b!r}`{flag} | {_md_cell(meaning)} |")
    return "\n".join(lines) + "\n"
