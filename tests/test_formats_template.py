"""The formats' template strings (mbt.formats.template_spans)."""

from __future__ import annotations

from mbt import formats


def _pieces(text):
    return [text[a:b] for a, b in formats.template_spans(text)]


def test_question_answer_markers_and_the_final_answer_marker_are_template():
    text = formats.qa_text("Tom has 3 apples. How many?", "He has 3 + 4 = 7.\n#### 7")
    assert _pieces(text) == ["Question:", "Answer:", "####"]
    spans = formats.template_spans(text)
    assert spans == sorted(spans) and all(b <= c for (_, b), (c, _) in zip(spans, spans[1:], strict=False))


def test_option_labels_are_template_and_plain_text_has_none():
    text = formats.mc_text("Which is red?", ["fox", "sky", "leaf", "sea"], 0)
    assert _pieces(text) == ["Question:", "A)", "B)", "C)", "D)", "Answer:"]
    assert formats.template_spans("The quick brown fox (A) jumps over the lazy dog.") == []
    assert formats.template_spans("") == []
