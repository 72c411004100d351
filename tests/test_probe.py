from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEXTS, make_model

from mbt import probe, trace
from mbt.pairs import ModelPair, PairSpec

L = 3
QA = [
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?\nAnswer: Tom has 3 + 4 = 7 apples.",
    "Question: Which colour? A) red B) green C) blue D) yellow\nAnswer: C",
    "Question: the quick brown fox\nAnswer: jumps over the lazy dog. Answer: dog",
    "Question: add\nAnswer: def add(a, b): return a + b",
]


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model(tokenizer):
    return trace.wrap(make_model("olmo2", n_layers=L, seed=3), tokenizer)


@pytest.fixture(scope="module")
def ids(tokenizer):
    return trace.encode(tokenizer, TEXTS, max_length=512)


def _hf_log_probs(model, ids):
    module = trace.unwrap(model)
    out = []
    with torch.no_grad():
        for x in ids:
            out.append(torch.log_softmax(module(input_ids=torch.tensor([x])).logits[0].double(), -1))
    return out


def _by(frame: pd.DataFrame, column: str = "value") -> pd.Series:
    return frame.set_index(["layer", "metric"])[column].sort_index()


def test_last_layer_is_the_models_own_distribution(model, ids):
    lens = probe.lens_logits(model, ids, batch_size=4)
    hf = _hf_log_probs(model, ids)
    for got, want in zip(lens[L], hf, strict=True):
        kl = (want.exp() * (want - got.double())).sum(-1)
        assert kl.abs().max() < 1e-6
        assert torch.equal(got.argmax(-1), want.argmax(-1))
    # earlier layers are genuinely different distributions
    kl1 = (hf[0].exp() * (hf[0] - lens[1][0].double())).sum(-1)
    assert kl1.mean() > 1e-3


def test_table_at_the_last_layer_matches_the_models_accuracy_and_loss(model, ids):
    frame = probe.logit_lens(model, TEXTS, n_bootstrap=100, progress=False)
    assert list(frame.columns) == list(probe.COLUMNS)
    assert sorted(frame.layer.unique()) == list(range(1, L + 1))
    assert set(frame.metric) == set(probe.METRICS)
    np.testing.assert_allclose(frame.depth, frame.layer / L)
    hf = _hf_log_probs(model, ids)
    hits = [(lp[:-1].argmax(-1) == torch.tensor(x[1:])).double() for lp, x in zip(hf, ids, strict=True)]
    ces = [-lp[:-1].gather(1, torch.tensor(x[1:])[:, None]).squeeze(1) for lp, x in zip(hf, ids, strict=True)]
    n_tokens = sum(len(x) - 1 for x in ids)
    last = frame[frame.layer == L].set_index("metric")
    assert last.loc["top1_acc", "pooled"] == pytest.approx(float(sum(h.sum() for h in hits)) / n_tokens, abs=1e-12)
    assert last.loc["top1_acc", "value"] == pytest.approx(float(np.mean([h.mean() for h in hits])), abs=1e-12)
    assert last.loc["cross_entropy", "pooled"] == pytest.approx(float(sum(c.sum() for c in ces)) / n_tokens,
                                                               rel=1e-6)
    assert last.loc["cross_entropy", "value"] == pytest.approx(float(np.mean([c.mean() for c in ces])), rel=1e-6)
    assert last.loc["kl_to_final", "value"] == 0
    assert (frame[frame.layer < L].set_index("metric").loc["kl_to_final", "value"] > 1e-3).all()
    assert (frame.n == len(TEXTS)).all() and (frame.n_tokens == n_tokens).all()
    assert (_by(frame).xs("top5_acc", level="metric") >= _by(frame).xs("top1_acc", level="metric")).all()
    finite = frame.dropna(subset=["ci_low"])
    assert ((finite.ci_low <= finite.value + 1e-12) & (finite.value <= finite.ci_high + 1e-12)).all()
    assert ((frame.pooled_ci_low <= frame.pooled + 1e-12) & (frame.pooled <= frame.pooled_ci_high + 1e-12)).all()


def test_paper_mode_normalises_the_last_layer_twice(model, ids):
    fixed = probe.logit_lens(model, TEXTS[:6], n_bootstrap=0, progress=False)
    paper = probe.logit_lens(model, TEXTS[:6], n_bootstrap=0, paper=True, progress=False)
    assert paper.paper.all() and not fixed.paper.any()
    early_fixed, early_paper = fixed[fixed.layer < L], paper[paper.layer < L]
    pd.testing.assert_series_equal(_by(early_fixed), _by(early_paper))
    last_fixed, last_paper = _by(fixed[fixed.layer == L]), _by(paper[paper.layer == L])
    assert last_paper[(L, "kl_to_final")] > 1e-4
    assert last_paper[(L, "entropy")] != pytest.approx(last_fixed[(L, "entropy")], rel=1e-6)
    # it is exactly the authors' computation: lm_head(norm(hidden_states[-1])) with HF's post-norm last state
    module = trace.unwrap(model)
    lens = probe.lens_logits(model, ids[:2], layers=[L], paper=True)[L]
    with torch.no_grad():
        for x, got in zip(ids[:2], lens, strict=True):
            h = module(input_ids=torch.tensor([x]), output_hidden_states=True).hidden_states[-1][0]
            want = torch.log_softmax(module.lm_head(module.model.norm(h)), -1)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_results_do_not_depend_on_batch_size_or_padding_side(model):
    runs = [
        probe.logit_lens(model, TEXTS, batch_size=bs, padding_side=side, n_bootstrap=50, progress=False)
        for bs, side in ((1, "right"), (4, "left"), (10, "right"))
    ]
    for other in runs[1:]:
        for column in ("value", "pooled", "ci_low", "ci_high"):
            np.testing.assert_allclose(_by(other, column), _by(runs[0], column), rtol=1e-5, atol=1e-6)
        assert (other.n_tokens == runs[0].n_tokens).all()


def test_answer_positions_score_only_the_answer(model, tokenizer):
    frame = probe.logit_lens(model, QA, positions="answer", n_bootstrap=0, progress=False)
    full = trace.encode(tokenizer, QA)
    expected = []
    for text, x in zip(QA, full, strict=True):
        end = text.rfind("Answer:") + len("Answer:")
        prefix = trace.encode(tokenizer, [text[:end]])[0]
        assert x[: len(prefix)] == prefix  # the answer starts on a token boundary in these texts
        expected.append(len(x) - len(prefix))
    assert expected[2] < 4  # only the answer after the LAST marker
    assert (frame.n_tokens == sum(expected)).all() and (frame.n == len(QA)).all()
    assert (frame.positions == "answer").all()
    # and they are the right positions: the answer-token loss at the last layer, by hand
    hf = _hf_log_probs(model, full)
    ce = [(-lp[:-1].gather(1, torch.tensor(x[1:])[:, None]).squeeze(1))[-k:] for lp, x, k in
          zip(hf, full, expected, strict=True)]
    last = frame[frame.layer == L].set_index("metric")
    assert last.loc["cross_entropy", "pooled"] == pytest.approx(float(torch.cat(ce).mean()), rel=1e-6)
    assert last.loc["cross_entropy", "value"] == pytest.approx(float(np.mean([c.mean() for c in ce])), rel=1e-6)
    with pytest.raises(ValueError, match="answer marker"):
        probe.logit_lens(model, [*QA, "no marker here"], positions="answer", progress=False)


def test_bos_and_padding_are_excluded(model, tokenizer):
    texts = ["<bos>" + t for t in TEXTS[:5]]
    ids = trace.encode(tokenizer, texts)
    assert all(x[0] == tokenizer.bos_token_id for x in ids)
    total = sum(len(x) - 1 for x in ids)
    with_bos = probe.logit_lens(model, texts, exclude_bos=False, n_bootstrap=0, progress=False)
    without = probe.logit_lens(model, texts, exclude_bos=True, n_bootstrap=0, progress=False)
    assert (with_bos.n_tokens == total).all()
    assert (without.n_tokens == total - len(texts)).all()
    assert not np.allclose(_by(with_bos, "pooled"), _by(without, "pooled"))


def test_invalid_layers_and_positions(model):
    with pytest.raises(ValueError, match=rf"valid layers are 0\.\.{L}"):
        probe.logit_lens(model, TEXTS, layers=[L + 1], progress=False)
    with pytest.raises(ValueError, match="positions"):
        probe.logit_lens(model, TEXTS, positions="last", progress=False)
    frame = probe.logit_lens(model, TEXTS[:3], layers=[0, 2], n_bootstrap=0, progress=False)
    assert sorted(frame.layer.unique()) == [0, 2]


def test_base_vs_sft_lens_divergence(model, tokenizer):
    spec = PairSpec(name="t", base="b", sft="s", family="custom")
    same = ModelPair(model, model, tokenizer, spec, L, 32)
    frame = probe.lens_divergence(same, TEXTS[:5], n_bootstrap=0, progress=False)
    assert set(frame.metric) == set(probe.DIVERGENCE_METRICS)
    values = _by(frame)
    assert (values.xs("kl_sft_base", level="metric") == 0).all()
    assert (values.xs("top1_agreement", level="metric") == 1).all()
    other = trace.wrap(make_model("olmo2", n_layers=L, seed=4), tokenizer)
    diff = _by(probe.lens_divergence(ModelPair(model, other, tokenizer, spec, L, 32), TEXTS[:5], n_bootstrap=0,
                                     progress=False))
    assert (diff.xs("kl_sft_base", level="metric") > 1e-4).all()
