r"""The measured calibration of the decision rules, as the methods page shows it.

``scripts/calibrate_verdicts.py`` simulates every decision rule of the verdict engine under a null (no
effect, or an effect exactly at the claim's threshold, with the noise structure named in the row) and at an
effect of the paper's size, at 10 and at 40 layers, and writes the rates to ``book/calibration.json``:

.. code-block:: text

    {"depths": [10, 40], "reps": 1000, "power_reps": 300, "seed": 0, "seconds": 30,
     "rules": [{"key": "band_replicates", "name": ..., "unit": "texts", "null": ..., "effect": ...,
                "level": "95 %", "by_depth": true, "false": [0.05, 0.053], "power": [1.0, 1.0]}, ...]}

A rate is a share of simulated cases: ``false`` counts *holds* and *contradicted* under the null (at most
``1 − level`` for a calibrated rule), ``power`` counts *holds* at the stated effect. A string in place of a
rate is ``"n/a"`` (no power simulation) or ``"inconclusive by rule"`` (the rule declines at that depth, e.g.
a depth spline below 16 layers). This module only reads and renders that file; each headline names its
rule (:attr:`mbt.paper.headlines.Headline.rule`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mbt.paper.headlines import HEADLINES, Headline

__all__ = ["claims_markdown", "load_calibration", "rules_markdown"]

_RULE_FIELDS = ("key", "name", "unit", "null", "effect", "level", "false", "power")


def load_calibration(path: Path) -> dict[str, Any]:
    """Read and check ``calibration.json`` (see the module docstring for its layout).

    Raises:
        FileNotFoundError: No file at ``path`` (with the command that writes it).
        ValueError: A rule lacks a field, or a rate is neither a number in [0, 1] nor a known string.
    """
    if not path.is_file():
        raise FileNotFoundError(f"no calibration file {path}; write it with "
                                f"`python scripts/calibrate_verdicts.py --out {path}`")
    data = json.loads(path.read_text())
    depths = data.get("depths")
    if not isinstance(depths, list) or not depths:
        raise ValueError(f"{path}: 'depths' must be a non-empty list, got {depths!r}")
    for rule in data.get("rules", []):
        missing = [f for f in _RULE_FIELDS if f not in rule]
        if missing:
            raise ValueError(f"{path}: rule {rule.get('key', '?')!r} lacks {missing}")
        for field in ("false", "power"):
            if len(rule[field]) != len(depths):
                raise ValueError(f"{path}: rule {rule['key']!r} has {len(rule[field])} {field} rates for "
                                 f"{len(depths)} depths")
            for x in rule[field]:
                if isinstance(x, str) and x not in ("n/a", "inconclusive by rule"):
                    raise ValueError(f"{path}: rule {rule['key']!r}: unknown {field} entry {x!r}")
                if not isinstance(x, str) and not (isinstance(x, int | float) and 0.0 <= x <= 1.0):
                    raise ValueError(f"{path}: rule {rule['key']!r}: {field} rate {x!r} is not in [0, 1]")
    return data


def _cell(x: float | str, reps: int) -> str:
    """``"4.8 % ± 0.7"``: a rate in percent with one Monte-Carlo standard error ``√(p(1 − p)/reps)``."""
    if isinstance(x, str):
        return x
    return f"{100 * x:.1f} % ± {100 * math.sqrt(max(x * (1 - x), 1e-12) / reps):.1f}"


def _header(depths: Sequence[int], first: Sequence[str]) -> list[str]:
    cols = [*first, *(f"false at {n} layers" for n in depths), "effect (power)", *(f"power at {n}" for n in depths)]
    return ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]


def _rates(rule: Mapping[str, Any], data: Mapping[str, Any]) -> list[str]:
    return [*(_cell(x, data["reps"]) for x in rule["false"]), rule["effect"],
            *(_cell(x, data["power_reps"]) for x in rule["power"])]


def _footer(data: Mapping[str, Any]) -> str:
    return (f"{data['reps']} null cases and {data['power_reps']} power cases per cell (± one Monte-Carlo standard "
            "error); rules over seeds, runs and rows do not depend on depth (one simulation, shown in every "
            f"column); seed {data['seed']}, {data.get('seconds', '?')} s on 2 CPU cores.")


def rules_markdown(data: Mapping[str, Any]) -> str:
    """One row per decision rule: key, rule, unit, level, null, false-decision rate and power per depth."""
    lines = _header(data["depths"], ("key", "rule", "unit", "level", "null"))
    for r in data["rules"]:
        cells = [f"`{r['key']}`", r["name"], r["unit"], r["level"], r["null"], *_rates(r, data)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n\n" + _footer(data) + "\n"


def claims_markdown(data: Mapping[str, Any], headlines: Sequence[Headline] = HEADLINES) -> str:
    """One row per judged claim of the paper: the claim, its chapter, its rule with that rule's measured rates.

    Raises:
        KeyError: A headline names a rule the file does not have (rerun the calibration script).
    """
    by_key = {r["key"]: r for r in data["rules"]}
    missing = sorted({h.rule for h in headlines if h.rule is not None} - set(by_key))
    if missing:
        raise KeyError(f"headlines name rules the calibration file lacks: {missing}; rerun "
                       "scripts/calibrate_verdicts.py --out book/calibration.json")
    lines = _header(data["depths"], ("claim", "chapter", "how", "rule", "unit", "level", "null"))
    for h in headlines:
        if h.rule is None:
            continue
        r = by_key[h.rule]
        cells = [f"`{h.id}`: {h.claim}", h.chapter.split("_", 1)[0], h.how, f"`{h.rule}`", r["unit"], r["level"],
                 r["null"], *_rates(r, data)]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
    reported = [h.id for h in headlines if h.rule is None]
    return ("\n".join(lines) + "\n\n" + f"Reported, not decided ({len(reported)}): "
            + ", ".join(f"`{i}`" for i in reported) + ".\n")
