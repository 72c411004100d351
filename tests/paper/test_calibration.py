"""The measured calibration of the decision rules and its tables on the methods page (mbt.paper.calibration)."""

from __future__ import annotations

import importlib.util
import json
import math
import sys

import pytest
from conftest import REPO

from mbt.paper import calibration as cal
from mbt.paper.headlines import HEADLINES, Headline

FILE = REPO / "book" / "calibration.json"


def _script():
    spec = importlib.util.spec_from_file_location("calibrate_verdicts", REPO / "scripts" / "calibrate_verdicts.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_committed_file_measures_every_rule_of_the_script_and_every_rule_a_claim_names():
    data = cal.load_calibration(FILE)
    keys = [r["key"] for r in data["rules"]]
    assert keys == [r.key for r in _script().RULES], "rerun scripts/calibrate_verdicts.py --out book/calibration.json"
    assert {h.rule for h in HEADLINES if h.rule} <= set(keys)
    assert data["depths"] == [10, 40] and data["reps"] >= 1000


def test_every_rule_keeps_its_false_decisions_near_five_percent_at_every_depth():
    """A rate more than two Monte-Carlo SEs above 5 % means the rule is not calibrated (the old t over seeds
    and the plain percentile bootstrap were; they are shown for comparison only where the script says so)."""
    data = cal.load_calibration(FILE)
    se = math.sqrt(0.05 * 0.95 / data["reps"])
    judged = {h.rule for h in HEADLINES if h.rule}
    for rule in data["rules"]:
        for rate in rule["false"]:
            if isinstance(rate, float) and rule["key"] in judged:
                assert rate <= 0.05 + 2 * se, (rule["key"], rate)


def test_a_malformed_file_is_refused_with_the_rule_and_field(tmp_path):
    path = tmp_path / "calibration.json"
    with pytest.raises(FileNotFoundError, match="calibrate_verdicts.py --out"):
        cal.load_calibration(path)
    good = {"depths": [10, 40], "reps": 100, "power_reps": 50, "seed": 0,
            "rules": [{"key": "k", "name": "n", "unit": "texts", "null": "flat", "effect": "e", "level": "95 %",
                       "false": [0.05, "inconclusive by rule"], "power": [0.9, "n/a"]}]}
    path.write_text(json.dumps(good))
    assert cal.load_calibration(path)["rules"][0]["key"] == "k"
    for change, match in (({"false": [0.05]}, "1 false rates for 2 depths"), ({"power": [1.5, 0.1]}, "not in"),
                          ({"false": ["maybe", 0.1]}, "unknown false entry")):
        path.write_text(json.dumps({**good, "rules": [{**good["rules"][0], **change}]}))
        with pytest.raises(ValueError, match=match):
            cal.load_calibration(path)
    path.write_text(json.dumps({**good, "rules": [{"key": "k"}]}))
    with pytest.raises(ValueError, match="lacks"):
        cal.load_calibration(path)


def test_tables_show_each_rate_with_its_monte_carlo_error_and_each_judged_claim_once():
    data = {"depths": [10, 40], "reps": 400, "power_reps": 100, "seed": 3, "seconds": 5,
            "rules": [{"key": "r1", "name": "rule one", "unit": "texts", "null": "flat", "effect": "+1",
                       "level": "95 %", "false": [0.05, "inconclusive by rule"], "power": [0.8, "n/a"]}]}
    rules = cal.rules_markdown(data)
    assert "| `r1` | rule one | texts | 95 % | flat | 5.0 % ± 1.1 | inconclusive by rule | +1 | 80.0 % ± 4.0 | n/a |" \
        in rules
    heads = [Headline("a", "01_divergence", "claim a", "m", "p", "w", "how a", rule="r1"),
             Headline("b", "06_midblock_lora", "claim b", "m", "p", "w", "how b")]
    claims = cal.claims_markdown(data, heads)
    assert claims.count("`r1`") == 1 and "`a`: claim a | 01 | how a" in claims
    assert "Reported, not decided (1): `b`" in claims
    with pytest.raises(KeyError, match="r2"):
        cal.claims_markdown(data, [Headline("c", "01_divergence", "c", "m", "p", "w", "h", rule="r2")])


def test_the_methods_page_gets_both_tables_when_the_book_is_staged(tmp_path):
    from mbt.book import builder

    stage = tmp_path / "stage"
    (stage / "book").mkdir(parents=True)
    (stage / "book" / "calibration.json").write_text(FILE.read_text())
    page = stage / "book" / "methods.md"
    page.write_text((REPO / "book" / "methods.md").read_text())
    builder.fill_markers(stage)
    text = page.read_text()
    assert "<!-- mbt:" not in text
    judged = [h for h in HEADLINES if h.rule]
    assert all(f"`{h.id}`: " in text for h in judged)
    assert "| `band_replicates` |" in text and "Reported, not decided" in text
