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
from mbt.paper.findings.common import as_family
from mbt.paper.headlines import BY_ID, HEADLINES
from mbt.paper.records import check_finding, record
from mbt.paper.verdicts import Verdict, pct, verdict_label

__all__ = [
    "compare_conventions",
    "conventions_markdown",
    "conventions_sentence",
    "knowledge_sentences",
    "mask_knowledge_sentence",
    "paper_vs_ours_markdown",
    "premise_markdown",
    "report",
    "store_problems_markdown",
    "swap_knowledge_sentences",
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
             f"{where}, each at the 95 % level and the table corrected as one family"]
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

    The table's judged rows are one family, corrected together (Holm,
    :func:`mbt.paper.findings.common.as_family`) before they are recorded and shown; the sentence under the
    table says so.

    Returns:
        An ``IPython.display.Markdown`` object (a notebook shows it as formatted text), or the
        Markdown string when IPython is missing.
    """
    findings, family = as_family(findings)
    record(findings, pair=pair, settings=settings)
    lines = ["| claim | paper (model) | ours | effect [95 % interval] | MDE | verdict | rule and note |",
             "|---|---|---|---|---|---|---|"]
    for f in findings:
        why = "; ".join(x for x in (f.rule, f.note) if x)
        verdict = f"**{_word(f.verdict)}**" if f.verdict is not None else "shown for scale"
        lines.append("| " + " | ".join(_md_cell(c) for c in (_claims(f), _papers(f), f.ours, f.interval_text(),
                                                               _mde(f), verdict, why)) + " |")
    text = "\n".join(lines) + "\n\n" + _sentence(findings, pair) + (" " + family if family else "")
    try:
        from IPython.display import Markdown
    except ImportError:  # pragma: no cover - IPython ships with the notebook stack
        return text
    return Markdown(text)


_LARGE = 1e6
"""Numbers at least this large (in absolute value) are written in scientific notation, never with all digits."""


def _no_interval(f: Mapping[str, Any]) -> bool:
    """Whether a stored finding lacks a finite interval (its rule then says why it is undecided)."""
    bounds = (f.get("ci_low"), f.get("ci_high"))
    return any(b is None or not math.isfinite(float(b)) for b in bounds)


def _record_interval(f: Mapping[str, Any]) -> str:
    """The effect and interval of a stored finding (``""`` for a scale row)."""
    if f.get("effect") is None:
        return ""
    effect, low, high, level = f.get("effect"), f.get("ci_low"), f.get("ci_high"), f.get("level") or 0.95
    numbers = [abs(float(x)) for x in (effect, low, high) if x is not None and math.isfinite(float(x))]
    if numbers and max(numbers) >= _LARGE:
        def sci(x: Any) -> str:
            return "n/a" if x is None or not math.isfinite(float(x)) else f"{float(x):+.4g}".replace("-", "−")

        if _no_interval(f):
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
                                   f"effect {_record_interval(f)}" if _record_interval(f) else "",
                                   f"why: {f['rule']}" if kind == "inconclusive" and _no_interval(f) and f.get("rule")
                                   else "") if x)
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


# ---- knowledge or format (chapter 10, the introduction and chapter 8) ------------------------------------


def _iv(x: float, low: float, high: float) -> str:
    """``+0.123 [+0.050, +0.190]`` (signed), ``n/a`` parts where undefined."""
    def one(v: float) -> str:
        return "n/a" if v != v else f"{v:+.3f}".replace("-", "−")
    return f"{one(float(x))} [{one(float(low))}, {one(float(high))}]"


def _score(x: float) -> str:
    return "n/a" if x != x else f"{float(x):.3f}"


def _ordered(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows ordered by SFT steps where known (the ladder's order), else as given."""
    if "sft_steps" not in frame.columns:
        return frame
    return frame.assign(_o=frame["sft_steps"].astype(float)).sort_values("_o", kind="stable", na_position="last")


def _rung(row: Any) -> str:
    steps = getattr(row, "sft_steps", float("nan"))
    return f"`{row.pair}`" + (f" ({int(steps)} SFT steps)" if steps == steps and steps is not None else "")


def knowledge_sentences(gains: pd.DataFrame) -> str:
    """Generated sentences on the ladder: where the format appears, what SFT adds and what it takes away.

    Where along the ladder the Q/A format appears (the first rung whose paired interval lies above 0), how
    much SFT adds to the arithmetic alone at each rung, and how much of the Base's own format it loses.

    Args:
        gains: :func:`mbt.knowledge.paired_gains` of every pair (columns ``pair``, ``sft_steps``, ``format``,
            ``base``, ``sft``, ``gain``, ``ci_low``, ``ci_high``, ``n``).

    Returns:
        Markdown text; every number comes from ``gains``.
    """
    if gains is None or gains.empty:
        return "No knowledge-or-format scores were recorded."
    if "pair" not in gains.columns:
        gains = gains.assign(pair="this pair")
    by = {f: _ordered(gains[gains["format"] == f]) for f in ("qa", "arithmetic", "own")}
    out = []
    qa = by["qa"]
    if len(qa):
        first = next((r for r in qa.itertuples() if r.ci_low > 0), None)
        last = qa.iloc[-1]
        if first is None:
            out.append(f"No SFT model answers the Q/A format (0-shot) better than its Base: every paired 95 % "
                       f"interval reaches 0 (the strongest, `{last['pair']}`: {_score(last['base'])} → "
                       f"{_score(last['sft'])}).")
        else:
            half = next((r for r in qa.itertuples() if r.ci_low > 0 and r.sft >= last["sft"] / 2), None)
            halfway = "" if half is None else (f", and half of that ({_score(last['sft'] / 2)}) by {_rung(half)} "
                                               f"({_score(half.sft)})")
            out.append(f"**The Q/A format** appears by {_rung(first)}: exact match {_score(first.base)} for the Base, "
                       f"{_score(first.sft)} after SFT (change {_iv(first.gain, first.ci_low, first.ci_high)}, "
                       f"paired 95 % interval over {int(first.n)} problems); the strongest, `{last['pair']}`, reaches "
                       f"{_score(last['sft'])}{halfway}.")
    ar = by["arithmetic"]
    if len(ar):
        parts = "; ".join(f"{_rung(r)} {_iv(r.gain, r.ci_low, r.ci_high)}" for r in ar.itertuples())
        out.append(f"**The arithmetic alone** (the Base gets {_score(ar.iloc[0]['base'])} right) changes with SFT "
                   f"by: {parts}.")
    own = by["own"]
    if len(own):
        parts = "; ".join(f"{_rung(r)} {_score(r.sft)} ({_iv(r.gain, r.ci_low, r.ci_high)})" for r in own.itertuples())
        lost = [r for r in own.itertuples() if r.ci_high < 0]
        tail = (f" The loss is clear (interval below 0) from {_rung(lost[0])} on." if lost
                else " No rung's loss is clear (every interval reaches 0).")
        out.append(f"**The Base's own format**: the Base solves {_score(own.iloc[0]['base'])} of the problems "
                   f"written as its pretraining text writes them; after SFT: {parts}.{tail}")
    return "\n\n".join(out)


def swap_knowledge_sentences(swaps: pd.DataFrame) -> str:
    """Generated sentences on the swaps scored by format and by knowledge.

    Per score and direction: the segment whose swap changes the score most, with its paired interval, how
    many segments change it clearly (interval excluding 0), and the whole donor's change.

    Args:
        swaps: :func:`mbt.knowledge.swap_sweeps` (``score_name``, ``direction``, ``kind``, ``head``,
            ``segment``, ``blocks``, ``diff``, ``diff_ci_low``, ``diff_ci_high``).
    """
    if swaps is None or swaps.empty:
        return "No swaps were scored."
    names = {"format": "the Q/A format", "knowledge": "the arithmetic alone"}
    out = []
    for score_name, part in swaps.groupby("score_name", sort=False):
        pieces = []
        for direction, rows in part.groupby("direction", sort=False):
            seg = rows[(rows["kind"] == "swap") & (rows["head"] == "receiver")]
            donor = rows[rows["kind"] == "donor"]
            if seg.empty:
                continue
            top = seg.loc[seg["diff"].abs().idxmax()]
            blocks = ", ".join(str(int(b)) for b in list(top["blocks"]))
            clear = sum(bool(r.diff_ci_low > 0 or r.diff_ci_high < 0) for r in seg.itertuples())
            cols = ["diff", "diff_ci_low", "diff_ci_high"]
            whole = f"; the whole donor: {_iv(*donor[cols].iloc[0])}" if len(donor) else ""
            if float(top["diff"]) == 0.0:
                most = f"no single segment changes it on any problem (all {len(seg)} changes are 0)"
            else:
                most = (f"segment {int(top['segment']) + 1} (blocks {blocks}) changes it most, "
                        f"{_iv(top['diff'], top['diff_ci_low'], top['diff_ci_high'])}; {clear} of {len(seg)} "
                        "segments change it clearly (interval excluding 0)")
            pieces.append(f"{direction}: {most}{whole}")
        if pieces:
            name = names.get(str(score_name), str(score_name))
            out.append(f"**{name[0].upper() + name[1:]}** — " + ". ".join(pieces) + ".")
    return "\n\n".join(out)


def mask_knowledge_sentence(contrasts: pd.DataFrame) -> str:
    """One generated sentence: does the LoRA mask that wins on the task win on the format or the knowledge?

    Args:
        contrasts: :func:`mbt.paper.findings.knowledge.mask_contrasts`.
    """
    if contrasts is None or contrasts.empty:
        return "The sweep has no arithmetic-alone scores to tell format from knowledge (rerun it with this mbt)."
    best = str(contrasts["mask"].iloc[0])
    parts = []
    for against, rows in contrasts.groupby("against", sort=False):
        cells = {r.score: r for r in rows.itertuples()}
        acc, ari = cells.get("accuracy"), cells.get("arithmetic")
        if acc is None or ari is None:
            continue
        who = "the untuned Base" if set(str(against)) == {"0"} else f"`{against}`"
        parts.append(f"against {who} it gains {_iv(acc.diff, acc.ci_low, acc.ci_high)} in the Q/A format and "
                     f"{_iv(ari.diff, ari.ci_low, ari.ci_high)} on the arithmetic alone")
    acc_best = contrasts[contrasts["score"] == "accuracy"]["mask_mean"].iloc[0]
    ari_best = contrasts[contrasts["score"] == "arithmetic"]["mask_mean"].iloc[0]
    text = (f"The mask that wins on the task, `{best}` (Q/A exact match {_score(acc_best)}, arithmetic alone "
            f"{_score(ari_best)}, means over seeds): " + "; ".join(parts) + " (paired by seed, 95 % t intervals).")
    base = contrasts[contrasts["against"].map(lambda a: set(str(a)) == {"0"})]
    acc, ari = (base[base["score"] == s] for s in ("accuracy", "arithmetic"))
    if len(acc) and len(ari):
        if float(acc["ci_low"].iloc[0]) > float(ari["ci_high"].iloc[0]):
            text += " What it learns is mostly the format: its format gain lies above its knowledge gain."
        elif float(ari["ci_low"].iloc[0]) > float(acc["ci_high"].iloc[0]):
            text += " What it learns is mostly the knowledge: its arithmetic gain lies above its format gain."
        else:
            text += " Its format and knowledge gains cannot be told apart at this number of seeds."
    return text


def premise_markdown(summary: pd.DataFrame | None, *, pair: str = "toy") -> str:
    """What a pair's Base can and cannot do, generated from the chapter 10 table kept in its store.

    Args:
        summary: :func:`mbt.knowledge.summarize_scores` rows (``pair``, ``model``, ``format``, ``score``,
            ``ci_low``, ``ci_high``, ``n``, ``empty``), e.g. the ``knowledge`` table of a results store; ``None``
            when it has not been measured.
        pair: The pair to describe (rows of other pairs are ignored when the table has a ``pair`` column).

    Returns:
        A Markdown paragraph.
    """
    if summary is None or summary.empty:
        return (f"*(What the Base of `{pair}` can do in its own format is measured in chapter 10, "
                "\"Knowledge or format\", which has not run for this pair yet.)*")
    rows = summary[summary["pair"] == pair] if "pair" in summary.columns else summary
    if rows.empty:
        return f"*(Chapter 10's table holds no row for `{pair}`.)*"
    get = {(r.model, r.format): r for r in rows.itertuples()}

    def cell(model: str, fmt: str) -> str:
        r = get.get((model, fmt))
        return "n/a" if r is None else f"{_score(r.score)} [{_score(r.ci_low)}, {_score(r.ci_high)}]"

    qa_base = get.get(("base", "qa"))
    empty = "" if qa_base is None else (f"; its answer is empty in {100 * float(qa_base.empty):.0f} % of them "
                                        "(it ends the text, or begins a new question, right after \"Answer:\")")
    n = "" if qa_base is None else f" of {int(qa_base.n)}"
    text = (f"On `{pair}`, the Base answers {cell('base', 'qa')}{n} held-out problems in the Q/A format "
            f"(0-shot, exact match){empty}. Asked in its own format — the facts, then \"So\", as its pretraining "
            f"text writes the same problems — it solves {cell('base', 'own')} (every number of the worked "
            f"solution right), and it gets the arithmetic alone right in {cell('base', 'arithmetic')}. After SFT: "
            f"Q/A format {cell('sft', 'qa')}, arithmetic alone {cell('sft', 'arithmetic')}, own format "
            f"{cell('sft', 'own')} (95 % bootstrap intervals over problems).")
    own_base = get.get(("base", "own"))
    if qa_base is not None and own_base is not None and own_base.ci_low > qa_base.ci_high:
        text += (" A Q/A exact match of the Base near 0 is therefore a statement about the format, not about "
                 "what the Base knows.")
    return text
