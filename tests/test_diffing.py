"""Model diffing (mbt.diffing): each quantity against a direct computation on tiny pairs."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEXTS

import mbt
from mbt import diffing, trace
from mbt.checks import NonFiniteError

pytestmark = pytest.mark.usefixtures("one_thread")

UNRELATED = [t for t in TEXTS if len(t) > 10] * 2
TASK = ["Question: Tom has 3 apples and buys 4 more. How many apples?\nAnswer: 3 + 4 = 7.\n#### 7",
        "Question: Which is red?\nA) fox B) dog\nAnswer: A",
        "Question: Ann has 5 pens and gives 2 away.\nAnswer: 5 - 2 = 3.\n#### 3",
        "The quick brown fox jumps over the lazy dog."]


@pytest.fixture(scope="module")
def pair(save_pair):
    base, sft = save_pair("olmo2", base_layers=4)
    return mbt.load_pair(base=str(base), sft=str(sft), progress=False)


@pytest.fixture(scope="module")
def same(save_pair):
    base, _ = save_pair("olmo2", base_layers=4)
    return mbt.load_pair(base=str(base), sft=str(base), progress=False)


def _hidden(model, ids):
    """Every layer's states of one text from a plain forward (layer l = hidden_states[l], pre-final-norm for l < L)."""
    module = trace.unwrap(model)
    with torch.no_grad():
        out = module(input_ids=torch.tensor([ids]), output_hidden_states=True, use_cache=False)
    states = [h[0].double() for h in out.hidden_states]
    # hidden_states[-1] is after the final norm: the residual stream after block L comes from a hook
    captured = []
    block = module.model.layers[-1]
    handle = block.register_forward_hook(lambda _m, _i, o: captured.append(o[0] if isinstance(o, tuple) else o))
    with torch.no_grad():
        module(input_ids=torch.tensor([ids]), use_cache=False)
    handle.remove()
    states[-1] = captured[0][0].double()
    return states


def test_the_activation_difference_matches_a_direct_computation(pair):
    k = 3
    table = diffing.activation_difference(pair, UNRELATED, k=k, n_bootstrap=50, cache=False)
    vectors = diffing.difference_vectors(pair, UNRELATED, k=k, cache=False)
    ids = trace.encode(pair.tokenizer, UNRELATED, max_length=None)
    d, b = [], []
    for x in ids:
        hb, hs = _hidden(pair.base, x[:k]), _hidden(pair.sft, x[:k])
        d.append(np.stack([(s - h).mean(0).numpy() for h, s in zip(hb, hs, strict=True)]))
        b.append(np.array([h.norm(dim=-1).mean().item() for h in hb]))
    d, b = np.stack(d), np.stack(b)  # (N, L+1, D), (N, L+1)
    n = d.shape[0]
    est = table[table["replicate"] == -1].set_index("layer")
    for layer in range(pair.n_layers + 1):
        delta = d[:, layer].mean(0)
        np.testing.assert_allclose(vectors.loc[layer].to_numpy(), delta, rtol=1e-4, atol=1e-5)
        trace_s = ((d[:, layer] - delta) ** 2).sum(1).sum() / (n - 1)
        corrected = math.sqrt(max(0.0, float(delta @ delta) - trace_s / n))
        assert est.loc[layer, "raw_norm"] == pytest.approx(float(np.linalg.norm(delta)), rel=1e-4)
        assert est.loc[layer, "delta_norm"] == pytest.approx(corrected, rel=1e-3, abs=1e-6)
        assert est.loc[layer, "base_norm"] == pytest.approx(b[:, layer].mean(), rel=1e-4)
        assert est.loc[layer, "relative"] == pytest.approx(corrected / b[:, layer].mean(), rel=1e-3, abs=1e-6)
    assert (table.groupby("layer")["replicate"].nunique() == 51).all()
    assert set(diffing.difference_summary(table).columns) >= {"layer", "relative", "ci_low", "ci_high"}


def test_the_same_model_twice_writes_nothing_and_batching_changes_nothing(pair, same):
    table = diffing.activation_difference(same, UNRELATED, n_bootstrap=0, cache=False)
    assert (table["raw_norm"] == 0).all() and (table["relative"] == 0).all()
    a = diffing.activation_difference(pair, UNRELATED, n_bootstrap=0, batch_size=1, cache=False)
    c = diffing.activation_difference(pair, UNRELATED, n_bootstrap=0, batch_size=5, cache=False)
    np.testing.assert_allclose(a["relative"], c["relative"], rtol=1e-5)


def test_relative_sizes_resample_texts_and_remove_the_noise_floor():
    rng = np.random.default_rng(0)
    n, dim = 40, 16
    b = rng.uniform(1, 2, n)
    # weights of one explicit resample: texts 0..n-1 drawn as idx
    idx = rng.integers(0, n, n)
    weights = np.vstack([np.ones(n), np.bincount(idx, minlength=n)])
    d = rng.normal(size=(n, dim))
    corrected, raw, base, rel = diffing.relative_sizes(d, b, weights)
    assert raw[1] == pytest.approx(np.linalg.norm(d[idx].mean(0)))
    assert base[1] == pytest.approx(b[idx].mean())
    sample = d[idx]
    tr = ((sample - sample.mean(0)) ** 2).sum() / (n - 1)
    assert corrected[1] == pytest.approx(math.sqrt(max(0.0, raw[1] ** 2 - tr / n)))
    assert rel[1] == pytest.approx(corrected[1] / base[1])
    # pure noise: the raw squared norm sits at tr Σ / n, the corrected one at 0 on average
    raws, cors = [], []
    for _ in range(400):
        noise = rng.normal(size=(n, dim))
        c, r, _, _ = diffing.relative_sizes(noise, b, np.ones((1, n)))
        raws.append(r[0] ** 2)
        cors.append(c[0] ** 2)
    assert np.mean(raws) == pytest.approx(dim / n, rel=0.1)
    assert np.mean(cors) < 0.25 * np.mean(raws)


def test_difference_tokens_read_delta_through_the_sft_lens(pair):
    vectors = diffing.difference_vectors(pair, UNRELATED, k=3, cache=False)
    tokens = diffing.difference_tokens(pair, vectors, head="sft", top=3, layers=[2])
    module = trace.unwrap(pair.sft)
    v = torch.tensor(vectors.loc[2].to_numpy(), dtype=torch.float32)
    with torch.no_grad():
        lp = torch.log_softmax(module.lm_head(module.model.norm(v[None]))[0].double(), -1)
    score = lp - lp.mean()
    promoted = tokens[tokens["direction"] == "promoted"].sort_values("rank")
    suppressed = tokens[tokens["direction"] == "suppressed"].sort_values("rank")
    assert promoted["token_id"].tolist() == score.topk(3).indices.tolist()
    assert suppressed["token_id"].tolist() == (-score).topk(3).indices.tolist()
    np.testing.assert_allclose(promoted["score"], score.topk(3).values.numpy(), rtol=1e-4)
    with pytest.raises(ValueError, match="head"):
        diffing.difference_tokens(pair, vectors, head="other")


def test_steering_adds_the_vector_and_scores_the_kl_to_sft(pair):
    vectors = diffing.difference_vectors(pair, UNRELATED, k=3, cache=False)
    table = diffing.steering_check(pair, vectors, TASK, layers=[pair.n_layers, 2], n_random=2, cache=False)
    assert sorted(table["layer"].unique()) == [2, pair.n_layers] and len(table) == 2 * len(TASK)
    module_b, module_s = trace.unwrap(pair.base), trace.unwrap(pair.sft)
    L = pair.n_layers
    v = torch.tensor(vectors.loc[L].to_numpy(), dtype=torch.float32)
    for i, text in enumerate(TASK):
        ids = torch.tensor([trace.encode(pair.tokenizer, [text], max_length=128)[0]])
        with torch.no_grad():
            p = torch.log_softmax(module_s(input_ids=ids).logits[0].double(), -1)
            h = _hidden(pair.base, ids[0].tolist())[L].float()
            q = torch.log_softmax(module_b.lm_head(module_b.model.norm(h + v)).double(), -1)
            q0 = torch.log_softmax(module_b(input_ids=ids).logits[0].double(), -1)
        kl = (p.exp() * (p - q)).sum(-1).mean().item()
        kl0 = (p.exp() * (p - q0)).sum(-1).mean().item()
        row = table[(table["layer"] == L) & (table["text"] == i)].iloc[0]
        assert row["kl_steered"] == pytest.approx(kl, rel=1e-3, abs=1e-5)
        assert row["kl_base"] == pytest.approx(kl0, rel=1e-3, abs=1e-5)
        assert row["reduction"] == pytest.approx(kl0 - kl, rel=1e-3, abs=1e-5)
    summary = diffing.steering_summary(table)
    assert set(summary["layer"]) == {2, L} and np.isfinite(summary["effect"]).all()
    with pytest.raises(ValueError, match="alpha"):
        diffing.steering_check(pair, vectors, TASK, alpha=0.0)
    with pytest.raises(ValueError, match="layers"):
        diffing.steering_check(pair, vectors, TASK, layers=[0])


def test_the_convergence_gap_is_each_models_lens_kl_per_text(pair):
    table = diffing.convergence_gap(pair, TASK, cache=False)
    assert set(table["model"]) == {"base", "sft"} and len(table) == 2 * pair.n_layers * len(TASK)
    assert (table[table["layer"] == pair.n_layers]["value"].abs() < 1e-9).all()
    for role in ("base", "sft"):
        lens = mbt.probe.logit_lens(pair.model(role), TASK, n_bootstrap=0, progress=False)
        kl = lens[lens["metric"] == "kl_to_final"].set_index("layer")["value"]
        mine = table[table["model"] == role].groupby("layer")["value"].mean()
        np.testing.assert_allclose(mine.to_numpy(), kl.reindex(mine.index).to_numpy(), rtol=1e-6, atol=1e-9)
    summary = diffing.gap_summary(table)
    assert len(summary) == 2 * pair.n_layers


def test_grafts_of_an_identical_donor_change_nothing_and_real_grafts_do(pair, same):
    table = diffing.graft_sweep(same, TASK, parts=("mlp",), cache=False)
    summary = diffing.graft_summary(table)
    assert (summary["diff"].abs() < 1e-12).all()  # the donor's late MLPs are the receiver's own; random size 0
    table = diffing.graft_sweep(pair, TASK, parts=("mlp", "attn"), cache=False)
    assert set(table["kind"]) == {"receiver", "graft", "random"} and set(table["part"]) == {"none", "mlp", "attn"}
    summary = diffing.graft_summary(table)
    grafted = summary[summary["kind"] == "graft"]
    assert (grafted["diff"].abs() > 0).all()
    ref = mbt.probe.lens_per_text(pair.base, TASK, layers=diffing.band_layers(pair.n_layers, (0.5, 1.0),
                                                                              include_last=False))
    own = table[(table["direction"] == "sft→base") & (table["kind"] == "receiver")]["score"].to_numpy()
    np.testing.assert_allclose(own, np.nanmean(ref, axis=1), rtol=1e-9)
    with pytest.raises(ValueError, match="parts"):
        diffing.graft_sweep(pair, TASK, parts=("head",))
    with pytest.raises(ValueError, match="no layer"):
        diffing.band_layers(4, (0.9, 0.95))


def test_token_kl_matches_the_output_distributions_and_knows_the_template(pair):
    table = diffing.token_kl(pair, TASK, cache=False)
    module_b, module_s = trace.unwrap(pair.base), trace.unwrap(pair.sft)
    ids = trace.encode(pair.tokenizer, [TASK[0]], max_length=512)[0]
    with torch.no_grad():
        p = torch.log_softmax(module_s(input_ids=torch.tensor([ids])).logits[0].double(), -1)
        q = torch.log_softmax(module_b(input_ids=torch.tensor([ids])).logits[0].double(), -1)
    kl = (p.exp() * (p - q)).sum(-1)[:-1].numpy()
    mine = table[table["text"] == 0].sort_values("position")
    np.testing.assert_allclose(mine["kl"].to_numpy(), kl, rtol=1e-4, atol=1e-6)
    kinds = diffing.token_kinds(pair.tokenizer, TASK[0], ids)
    assert mine["kind"].tolist() == kinds[1:]
    pieces = {kind: "".join(pair.tokenizer.decode([t]) for t, k in zip(ids, kinds, strict=True) if k == kind)
              for kind in set(kinds)}
    assert "Question" in pieces["template"] and "####" in pieces["template"]
    assert "Tom" in pieces["prompt"] and "7" in pieces["answer"]
    assert set(diffing.token_kinds(pair.tokenizer, TASK[3], trace.encode(pair.tokenizer, [TASK[3]])[0])) == {"text"}
    by_kind = diffing.token_kl_summary(table)
    per_text = table[table["kind"] == "template"].groupby("text")["kl"].mean()
    assert by_kind.set_index("group").loc["template", "kl"] == pytest.approx(per_text.mean())
    by_pos = diffing.token_kl_summary(table, by="position", n_bins=4)
    assert by_pos["group"].between(0, 1).all()
    with pytest.raises(ValueError, match="by"):
        diffing.token_kl_summary(table, by="layer")


def test_inputs_are_checked_before_any_model_runs(pair):
    class NoModels:
        pass

    with pytest.raises(ValueError, match="ModelPair"):
        diffing.activation_difference(NoModels(), UNRELATED)
    with pytest.raises(ValueError, match="texts"):
        diffing.activation_difference(pair, ["one"])
    with pytest.raises(ValueError, match="k must be"):
        diffing.activation_difference(pair, UNRELATED, k=0)
    with pytest.raises(ValueError, match="texts"):
        diffing.token_kl(pair, "a single string")


def test_non_finite_states_are_named(save_pair, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base, sft = save_pair("olmo2", base_layers=4)
    model = AutoModelForCausalLM.from_pretrained(sft)
    with torch.no_grad():
        model.model.layers[1].mlp.down_proj.weight.fill_(float("nan"))
    model.save_pretrained(tmp_path / "sft")
    AutoTokenizer.from_pretrained(sft).save_pretrained(tmp_path / "sft")
    bad = mbt.load_pair(base=str(base), sft=str(tmp_path / "sft"), progress=False)
    with pytest.raises(NonFiniteError, match="sft model, layer 2"):
        diffing.activation_difference(bad, UNRELATED, cache=False)
    with pytest.raises(NonFiniteError, match="sft model"):
        diffing.token_kl(bad, TASK, cache=False)


def test_results_are_cached_by_the_call(pair):
    first = diffing.activation_difference(pair, UNRELATED, n_bootstrap=10)
    again = diffing.activation_difference(pair, UNRELATED, n_bootstrap=10)
    pd.testing.assert_frame_equal(first, again)
