r"""Rendering findings: the chapter tables, the collected "Paper vs ours" table, the conventions table.

Everything here turns data into Markdown; nothing computes a number.
"""

from __future__ import annotations

import dataclasses
import html
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


_MARKS: dict[str, tuple[str, str]] = {
    "holds": ("✓", "holds"),
    "contradicted": ("✗", "contradicted"),
    "inconclusive": ("?", "inconclusive"),
    "scale": ("○", "shown for scale only"),
}
"""The at-a-glance marks: verdict → (symbol, words). Symbols differ in shape, not only in colour."""


def _attr(text: str) -> str:
    """``text`` safe inside a double-quoted HTML attribute of a Markdown table cell."""
    return html.escape(" ".join(str(text).split()), quote=True).replace("|", "&#124;")


def _kind(f: Mapping[str, Any]) -> str:
    """``holds``/``contradicted``/``inconclusive``/``scale`` for a stored finding (``old``: a pre-verdict record)."""
    verdict = f.get("verdict")
    if verdict:
        return str(getattr(verdict, "value", verdict))
    return "old" if "agrees" in f else "scale"


def _chapters_run(found: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """The chapters a pair recorded at least one finding for, in book order."""
    chapters = {BY_ID[h].chapter for h in found if h in BY_ID}
    return [c for c in dict.fromkeys(h.chapter for h in HEADLINES) if c in chapters]


def _mark(f: Mapping[str, Any] | None, number: Mapping[str, int]) -> str:
    """One matrix cell: a symbol whose hover title carries our value, the effect and its interval."""
    if f is None:
        return "–"
    if f.get("same_as") and f["same_as"] in number:
        k = number[f["same_as"]]
        return f'<abbr title="the same comparison as row {k}, counted there">= #{k}</abbr>'
    if (wrong := check_finding(f)) is not None:
        return f'<abbr title="{_attr("left out: the stored finding cannot be shown (" + wrong + ")")}">!</abbr>'
    kind = _kind(f)
    if kind == "old":
        return '<abbr title="a record from before calibrated verdicts: rebuild this pair">old</abbr>'
    symbol, words = _MARKS[kind]
    detail = "; ".join(x for x in (f"ours: {f.get('ours', '')}" if f.get("ours", "") != "" else "",
                                   f"effect {_record_interval(f)}" if _record_interval(f) else "") if x)
    return f'<abbr title="{_attr(words + (": " + detail if detail else ""))}">{symbol}</abbr>'


def _counts(found: Mapping[str, Mapping[str, Any]]) -> dict[str, int]:
    """Distinct comparisons of one pair by verdict (a ``same_as`` row is counted with the row it repeats)."""
    counts = {kind: 0 for kind in _MARKS}
    for h in HEADLINES:
        f = found.get(h.id)
        if f is None or f.get("same_as") or check_finding(f) is not None:
            continue
        kind = _kind(f)
        if kind in counts:
            counts[kind] += 1
    return counts


def _chapter_numbers(chapters: Sequence[str]) -> str:
    return ", ".join(c.split("_", 1)[0].lstrip("0") for c in chapters) or "none"


def paper_vs_ours_markdown(records: Mapping[str, Mapping[str, Mapping[str, Any]]], *,
                           titles: Mapping[str, str] | None = None) -> str:
    """The book's "Paper vs ours" page body: a matrix to take in at a glance, the counts, then the details.

    1. **Counts per pair**: the chapters it ran and its distinct comparisons by verdict.
    2. **The matrix**, one table per chapter: a row per headline of the paper (:data:`HEADLINES`, numbered
       as in the details), a column per pair *that ran that chapter* (the columns of chapters a pair did
       not run are left out and named below the table), the verdict as a mark — ✓ holds, ✗ contradicted,
       ? inconclusive, ○ shown for scale only, ``= #k`` the same comparison as row k (counted there), – not
       computed — whose hover title gives our value, the effect and its interval.
    3. **The details**, one folded section (``<details>``) per chapter: the claim, the paper's value and
       model, each pair's value with the effect, its interval and the verdict as a word, and how ours is
       computed.

    Args:
        records: ``{pair label: {headline id: finding dict}}`` (see :func:`read_records`).
        titles: Chapter titles by chapter name for the links (:data:`mbt.book.chapters.TITLES`); default:
            the chapter names.

    Returns:
        MyST Markdown (tables, and inline HTML for the marks and the folded sections).
    """
    pairs = list(records)
    number = {h.id: i for i, h in enumerate(HEADLINES, start=1)}
    title = {h.chapter: (titles or {}).get(h.chapter, h.chapter) for h in HEADLINES}
    ran = {p: _chapters_run(records[p]) for p in pairs}
    chapters = list(dict.fromkeys(h.chapter for h in HEADLINES))
    out = ["## Counts per pair", "",
           "| pair | chapters run | ✓ holds | ✗ contradicted | ? inconclusive | ○ scale only |",
           "|---|---|---|---|---|---|"]
    for p in pairs:
        c = _counts(records[p])
        out.append(f"| `{_md_cell(p)}` | {_chapter_numbers(ran[p])} | {c['holds']} | {c['contradicted']} | "
                   f"{c['inconclusive']} | {c['scale']} |")
    out += ["", "Each count is of distinct comparisons, each decided at the 95 % level.", "",
            "## At a glance", "",
            "Marks: ✓ holds · ✗ contradicted · ? inconclusive · ○ shown for scale only · = #k the same comparison "
            "as row k · – not computed. Point at a mark for our value, the effect and its 95 % "
            "interval; the details below list them all. A pair appears under the chapters it ran."]
    for chapter in chapters:
        heads = [h for h in HEADLINES if h.chapter == chapter]
        here = [p for p in pairs if chapter in ran[p]]
        out += ["", f"### {title[chapter]}", ""]
        if not here:
            out.append("No pair has run this chapter yet.")
            continue
        out.append("| # | claim (paper's model) | " + " | ".join(f"`{_md_cell(p)}`" for p in here) + " |")
        out.append("|---|---|" + ":---:|" * len(here))  # marks centred under their pair
        for h in heads:
            marks = [_mark(records[p].get(h.id), number) for p in here]
            out.append(f"| {number[h.id]} | {_md_cell(h.claim)} ({_md_cell(h.model)}) | " + " | ".join(marks) + " |")
        absent = [p for p in pairs if p not in here]
        if absent:
            out += ["", "Not run for this chapter: " + ", ".join(f"`{p}`" for p in absent) + "."]
    out += ["", "## Details", ""]
    for chapter in chapters:
        heads = [h for h in HEADLINES if h.chapter == chapter]
        here = [p for p in pairs if chapter in ran[p]]
        out += ["<details>", f"<summary>{html.escape(title[chapter])}: the paper's values and ours, with effects, "
                "intervals and verdicts</summary>", ""]
        head = ["#", "claim", "paper", "paper's model", *[f"ours: `{p}`" for p in here], "how ours is computed"]
        out += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for h in heads:
            cells = [str(number[h.id]), _md_cell(h.claim), _md_cell(h.paper), _md_cell(f"{h.model}; {h.where}")]
            for p in here:
                f = records[p].get(h.id)
                if f is None:
                    cells.append("not computed")
                elif f.get("same_as") and f["same_as"] in number:
                    cells.append(_md_cell(f"same comparison as #{number[f['same_as']]}"))
                elif (wrong := check_finding(f)) is not None:
                    cells.append(_md_cell(f"left out: the stored finding cannot be shown ({wrong})"))
                else:
                    verdict = f.get("verdict")
                    text = " — ".join(x for x in (str(f.get("ours", "")), _record_interval(f)) if x)
                    if verdict:
                        text += f" → **{_word(verdict)}**"
                    elif "agrees" in f:
                        text += " (record from before calibrated verdicts: rebuild)"
                    cells.append(_md_cell(text))
            cells.append(f"[{title[h.chapter]}](../notebooks/{h.chapter}.ipynb): {_md_cell(h.how)}")
            out.append("| " + " | ".join(cells) + " |")
        out += ["", "</details>", ""]
    legend = ("**holds**: the 95 % interval of the effect lies entirely on the side the paper claims; "
              "**contradicted**: entirely on the other side; **inconclusive**: the interval straddles the "
              "threshold, so this sample cannot tell. No verdict: shown for scale only (the paper's number was "
              "lost, or the quantity depends on model size or set-up). \"same comparison as #k\": the claim maps "
              "to the same test on that pair as row k and is counted once. \"not computed\": the pair ran the "
              "chapter, but its data did not allow this comparison.")
    return "\n".join(out) + "\n" + legend + "\n"


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
