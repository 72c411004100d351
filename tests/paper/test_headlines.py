"""The paper's headline numbers as data (mbt.paper.headlines)."""

from __future__ import annotations

import re

import pytest

from mbt import book, paper


def test_headlines_cover_every_number_of_section_11():
    ids = [h.id for h in paper.HEADLINES]
    assert len(ids) == len(set(ids))
    assert all(h.chapter in book.CHAPTERS for h in paper.HEADLINES)
    papers = " ".join(h.paper for h in paper.HEADLINES)
    # representation analysis, probing, weights, swapping
    for number in ("> 500", "0.60 → 0.52", "> 0.10", "−0.001", "+0.003", "−0.002", "> 0.60"):
        assert number in papers, number
    # Fig. 7, abstract/intro, Appendix A (3 and 10 segments) and Appendix B (5 configs x 2 benchmarks)
    for number in ("0.19", "0.135", "0.375", "0.28", "0.30", "0.27", "0.22", "0.32", "0.29", "0.25",
                   "+10.2 %", "0.4650", "0.4721", "0.4550", "0.4503", "0.4589", "0.4693", "0.4761", "0.4771",
                   "0.4754", "0.4502", "0.4215", "0.3966", "0.3821", "14.53", "13.58", "14.70", "13.76", "14.61",
                   "13.63", "14.65", "13.72", "14.54", "13.60"):
        assert re.search(rf"(^|[^\d]){re.escape(number)}($|[^\d])", papers), number
    assert paper.chapter_of("cka_final") == "01_divergence"
    with pytest.raises(ValueError, match="unknown headline"):
        paper.Finding("no_such_claim", "1")


def test_every_headline_is_produced_by_its_own_chapters_findings():
    import importlib
    import pkgutil

    import numpy as np
    import pandas as pd
    from paper_fakes import PAPER_LIKE_CKA, _frame, _knowledge, _lens, _swap, _sweep_table

    from mbt import segments
    from mbt.metrics import INTRINSIC_METRICS

    n = 40
    d = np.arange(n + 1) / n
    curve = {m: list(5 + np.sin(3 * d) + 0.01 * np.cos(17 * d)) for m in INTRINSIC_METRICS}
    cka = list(np.interp(d, np.linspace(0, 1, len(PAPER_LIKE_CKA)), PAPER_LIKE_CKA))
    shift = list(0.01 + d ** 4)
    analyze_table = _frame(cka, shift, [1 - 0.1 * x for x in d], base=curve, sft=curve)
    blocks = pd.Series(0.01 + d[1:] ** 4, index=range(1, n + 1))
    per_layer = pd.DataFrame({"cosine_similarity": 1 - d[1:], "spectral_norm": np.exp(d[1:])}, index=blocks.index)
    masks = [*segments.PAPER_MASKS, *segments.single_segment_masks(3), *segments.single_segment_masks(10)]
    by_chapter = {
        "01_divergence": paper.divergence_findings(analyze_table, halves=(analyze_table, analyze_table)),
        "02_convergence": paper.convergence_findings(analyze_table),
        "03_probing": paper.probing_findings(_lens(0.65, 0.52)),
        "04_weights": [*paper.weights_findings(blocks, blocks), *paper.correlation_findings(blocks, per_layer,
                                                                                             n_surrogates=19)],
        "05_swapping": paper.swap_findings(_swap([-0.01, 0.0, 0.02, 0.0, -0.03])),
        "06_midblock_lora": paper.lora_findings(_sweep_table({m: 0.1 + 0.01 * i for i, m in enumerate(masks)})),
        "09_what_sft_writes": _diffing_findings(),
        "10_knowledge_or_format": paper.knowledge_findings(*_knowledge()),
    }
    produced = {hid for found in by_chapter.values() for f in found for hid in f.ids}
    # a claim decided by a verdict names its calibrated rule (the methods page shows its false-decision rate)
    unruled = [hid for found in by_chapter.values() for f in found if f.verdict is not None for hid in f.ids
               if paper.BY_ID[hid].rule is None]
    assert not unruled, f"decided claims without a calibrated rule (mbt.paper.headlines.RULE_OF): {unruled}"
    reported = [hid for found in by_chapter.values() for f in found if f.verdict is None for hid in f.ids]
    assert all(paper.BY_ID[hid].rule is None for hid in reported)
    missing = [h.id for h in paper.HEADLINES if h.id not in produced]
    assert not missing, f"headlines no findings module produces: {missing}"
    for chapter, found in by_chapter.items():
        assert {paper.chapter_of(hid) for f in found for hid in f.ids} == {chapter}
    modules = {importlib.import_module(f"mbt.paper.findings.{m.name}").CHAPTER
               for m in pkgutil.iter_modules(importlib.import_module("mbt.paper.findings").__path__)
               if m.name != "common"}
    assert modules == set(by_chapter)  # a new findings module must be added here (CONTRIBUTING.md, "Add a claim")


def _diffing_findings():
    """Chapter 9's findings from simulated tables (every table present)."""
    import numpy as np
    from diffing_fakes import _difference, _gap, _grafts, _runs, _steering, _tokens

    rng = np.random.default_rng(0)
    return paper.diffing_findings(difference=_difference(rng, 10, 1.0, reps=100), steering=_steering(rng, 10, 0.1),
                                  gap=_gap(rng, 10, 0.1), grafts=_grafts(rng, 0.1, -0.1, 0.0),
                                  tokens=_tokens(rng, 0.5),
                                  runs=_runs(rng, 10, equal_profile=0.1, standard_profile=0.2))


@pytest.mark.parametrize("n_layers", [10, 40])
def test_one_comparison_one_row_and_no_holding_interval_across_its_threshold(n_layers):
    """The judged rows of the representation chapters pass the table checks (mbt.paper.families.row_problems)."""
    import numpy as np
    from paper_fakes import PAPER_LIKE_CKA, _frame

    from mbt.metrics import INTRINSIC_METRICS
    from mbt.paper import families
    from mbt.paper.findings.common import as_decision

    d = np.arange(n_layers + 1) / n_layers
    cka = list(np.interp(d, np.linspace(0, 1, len(PAPER_LIKE_CKA)), PAPER_LIKE_CKA))
    curve = {m: list(5 + np.sin(3 * d) + 0.5 * d**4) for m in INTRINSIC_METRICS}
    table = _frame(cka, list(0.01 + d**4), [1 - 0.1 * x**4 for x in d], base=curve, sft=curve)
    for found in (paper.divergence_findings(table, halves=(table, table)), paper.convergence_findings(table)):
        rows = [as_decision(f) for f in found if f.verdict is not None]
        assert families.row_problems(rows) == []
