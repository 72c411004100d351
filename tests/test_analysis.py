from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TEXTS, make_tokenizer

import mbt
from mbt import analysis, identity, trace
from mbt import metrics as M
from mbt.metrics.registry import names
from mbt.pairs import ModelPair, PairMismatchError, PairSpec


@pytest.fixture(scope="module")
def pair(save_pair):
    base_dir, sft_dir = save_pair("olmo2")
    return mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")


def _values(frame: pd.DataFrame) -> pd.Series:
    return frame.set_index(["model", "layer", "metric"])["value"].sort_index()


def test_covers_every_layer_model_and_metric(pair):
    frame = mbt.analyze(pair, TEXTS, cache=False, progress=False, n_bootstrap=50)
    assert list(frame.columns) == list(analysis.COLUMNS)
    assert sorted(frame.layer.unique()) == list(range(pair.n_layers + 1))
    np.testing.assert_allclose(frame.depth, frame.layer / pair.n_layers)
    per_model = frame.groupby("model").metric.unique().to_dict()
    intrinsic = set(names("token")) | set(names("pooled"))
    assert set(per_model["base"]) == intrinsic == set(per_model["sft"])
    expected_pair = set(names("pair")) | {f"delta_{m}" for m in intrinsic}
    assert set(per_model["pair"]) == expected_pair
    assert len(frame) == (pair.n_layers + 1) * (2 * len(intrinsic) + len(expected_pair))
    assert (frame.conventions == "standard").all()
    # intervals exist where defined and bracket the mean
    sampled = frame[frame.aggregation.isin(["sample_mean", "sample_delta"])]
    assert sampled.ci_low.notna().all()
    assert (sampled.ci_low <= sampled.value + 1e-12).all() and (sampled.value <= sampled.ci_high + 1e-12).all()


def test_numbers_do_not_depend_on_batch_size_or_padding_side(pair):
    runs = [
        mbt.analyze(pair, TEXTS, batch_size=bs, padding_side=side, cache=False, progress=False, n_bootstrap=20)
        for bs, side in ((1, "right"), (4, "right"), (4, "left"))
    ]
    ref = _values(runs[0])
    for other in runs[1:]:
        got = _values(other)
        finite = np.isfinite(ref.values)
        np.testing.assert_array_equal(finite, np.isfinite(got.values))
        np.testing.assert_allclose(got.values[finite], ref.values[finite], rtol=1e-4, atol=1e-6)


def test_bit_for_bit_deterministic_on_cpu(pair):
    a = mbt.analyze(pair, TEXTS, batch_size=3, cache=False, progress=False, n_bootstrap=30)
    b = mbt.analyze(pair, TEXTS, batch_size=3, cache=False, progress=False, n_bootstrap=30)
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_rows_equal_the_metrics_applied_to_directly_collected_states(pair):
    conv = "paper"
    frame = mbt.analyze(pair, TEXTS, conventions=conv, n_token=6, cache=False, progress=False, n_bootstrap=10)
    values = _values(frame)
    ids = trace.encode(pair.tokenizer, TEXTS, max_length=512)
    states = {role: trace.collect_layers(m, ids, progress=False) for role, m in pair.models().items()}
    for layer in (0, 2, 3):
        pooled = {role: torch.stack([s.double().mean(0) for s in states[role][layer]]) for role in states}
        for role in ("base", "sft"):
            assert values[(role, layer, "effective_rank")] == pytest.approx(
                M.effective_rank(pooled[role], conventions=conv), rel=1e-5)
            entropies = [float(M.prompt_entropy(s[None], conventions=conv)[0]) for s in states[role][layer][:6]]
            assert values[(role, layer, "prompt_entropy")] == pytest.approx(np.mean(entropies), rel=1e-6)
        assert values[("pair", layer, "cka")] == pytest.approx(
            M.cka(pooled["base"], pooled["sft"], conventions=conv), rel=1e-5)
        shift = float(torch.linalg.vector_norm(pooled["sft"].mean(0) - pooled["base"].mean(0)))
        assert values[("pair", layer, "mean_shift")] == pytest.approx(shift, rel=1e-5)
        assert values[("pair", layer, "relative_mean_shift")] == pytest.approx(
            shift / float(torch.linalg.vector_norm(pooled["base"].mean(0))), rel=1e-5)
    token_rows = frame[(frame.metric == "curvature") & (frame.model == "base")]
    assert (token_rows.n <= 6).all() and (token_rows.n >= 5).all()  # "fox" alone may be too short


def test_a_model_against_itself_is_perfectly_aligned(pair):
    same = ModelPair(pair.base, pair.base, pair.tokenizer, PairSpec("self", "b", "b", "custom"), pair.n_layers,
                     pair.hidden_size)
    frame = mbt.analyze(same, TEXTS, metrics=["cka", "mean_shift", "cosine_similarity", "prompt_entropy"],
                        cache=False, progress=False, n_bootstrap=10)
    values = _values(frame)
    for layer in range(pair.n_layers + 1):
        assert values[("pair", layer, "cka")] == pytest.approx(1.0, abs=1e-9)
        assert values[("pair", layer, "mean_shift")] == pytest.approx(0.0, abs=1e-9)
        assert values[("pair", layer, "cosine_similarity")] == pytest.approx(1.0, abs=1e-9)
        assert values[("pair", layer, "delta_prompt_entropy")] == 0.0


def test_results_are_cached_and_corruption_is_recomputed(pair, tmp_path, monkeypatch):
    kwargs = dict(metrics=["cka", "sparsity"], cache=tmp_path, progress=False, n_bootstrap=10)
    first = mbt.analyze(pair, TEXTS, **kwargs)
    calls = []
    original = analysis._run_model
    monkeypatch.setattr(analysis, "_run_model", lambda *a, **k: calls.append(1) or original(*a, **k))
    again = mbt.analyze(pair, TEXTS, **kwargs)
    assert calls == []
    pd.testing.assert_frame_equal(first, again)
    mbt.analyze(pair, TEXTS[:-1], **kwargs)  # other texts: another key, recomputed
    assert len(calls) == 2
    manifests = [m for m in (tmp_path / "analyze").glob("*.json")
                 if json.loads(m.read_text())["settings"]["n_texts"] == len(TEXTS)]
    assert len(manifests) == 1
    manifests[0].with_suffix(".parquet").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="partial or corrupt"):
        recomputed = mbt.analyze(pair, TEXTS, **kwargs)
    assert len(calls) == 4  # base + sft, twice
    pd.testing.assert_frame_equal(first, recomputed)


def test_bad_arguments_are_refused(pair):
    with pytest.raises(ValueError, match="valid: 'all' or any of"):
        mbt.analyze(pair, TEXTS, metrics=["cka", "ckaa"], cache=False)
    with pytest.raises(ValueError, match="n_token"):
        mbt.analyze(pair, TEXTS, n_token=len(TEXTS) + 1, cache=False)
    with pytest.raises(ValueError, match="non-empty"):
        mbt.analyze(pair, [], cache=False)


def test_refuses_when_the_sft_side_would_see_other_token_ids(pair, save_pair):
    other_tok = make_tokenizer(vocab_size=290)
    sft = trace.wrap(trace.unwrap(pair.sft), other_tok)
    mixed = ModelPair(pair.base, sft, pair.tokenizer, pair.spec, pair.n_layers, pair.hidden_size)
    with pytest.raises(PairMismatchError, match="different token ids"):
        mbt.analyze(mixed, TEXTS, cache=False, progress=False)


def _unloadable(pair):
    """A sequential copy of ``pair`` whose loaders fail: any model work raises."""
    def boom():
        raise AssertionError("a model was loaded")

    return ModelPair(None, None, pair.tokenizer, pair.spec, pair.n_layers, pair.hidden_size,
                     loaders={"base": boom, "sft": boom}, dtype=torch.float32)


def test_n_token_zero_skips_token_metrics_and_refuses_them_by_name(pair):
    frame = mbt.analyze(pair, TEXTS, n_token=0, cache=False, progress=False, n_bootstrap=10)
    assert not set(names("token")) & set(frame.metric)
    assert {"cka", "effective_rank", "delta_effective_rank"} <= set(frame.metric)
    with pytest.raises(ValueError, match="n_token is 0"):
        mbt.analyze(pair, TEXTS, n_token=0, metrics=["cka", "prompt_entropy"], cache=False, progress=False)


@pytest.mark.parametrize("kwargs, match", [
    ({"metrics": ["cka", "ckaa"]}, "valid: 'all' or any of"),
    ({"batch_size": 0}, "batch_size must be a positive integer"),
    ({"batch_size": -2}, "batch_size must be a positive integer"),
    ({"n_token": -1}, "n_token must be in 0"),
    ({"n_token": len(TEXTS) + 1}, "n_token must be in 0"),
    ({"max_length": 0}, "max_length must be a positive integer"),
    ({"max_length": -5}, "max_length must be a positive integer"),
    ({"conventions": "papr"}, "unknown conventions preset"),
    ({"n_bootstrap": -1}, "n_bootstrap"),
    ({"padding_side": "middle"}, "padding_side"),
])
def test_bad_arguments_are_refused_before_any_model_work(pair, kwargs, match):
    with pytest.raises(ValueError, match=match):
        mbt.analyze(_unloadable(pair), TEXTS, cache=False, progress=False, **kwargs)


def test_degenerate_texts_are_refused_with_the_index(pair):
    lazy = _unloadable(pair)
    with pytest.raises(ValueError, match="text 1 is empty"):
        mbt.analyze(lazy, ["a text", "", "another"], cache=False, progress=False)
    with pytest.raises(ValueError, match="text 0 is empty"):
        mbt.analyze(lazy, ["  \n", "x"], cache=False, progress=False)
    with pytest.raises(ValueError, match="fewer than 2 distinct texts"):
        mbt.analyze(lazy, ["same text"] * 5, cache=False, progress=False)


def test_max_length_is_capped_at_the_models_positions_with_one_warning(pair):
    limit = trace.unwrap(pair.base).config.max_position_embeddings
    long_text = " ".join(["lazy dog"] * limit)  # far more than `limit` tokens
    texts = [long_text, *TEXTS[:5]]
    with pytest.warns(UserWarning, match=rf"1 of 6 texts are longer than the models' {limit} positions") as rec:
        frame = mbt.analyze(pair, texts, metrics=["cka", "prompt_entropy"], max_length=4 * limit, cache=False,
                            progress=False, n_bootstrap=0)
    assert len([w for w in rec if "positions" in str(w.message)]) == 1
    assert np.isfinite(frame.value).all()


def test_rank_tolerance_uses_the_models_dtype(save_pair, monkeypatch):
    X = torch.tensor([[1.0, 0.0], [0.0, 1e-4]], dtype=torch.float32)
    assert M.rank_deficiency(X) == 0.0  # float32 eps: both directions count
    assert M.rank_deficiency(X, source_dtype=torch.bfloat16) == 0.5  # bf16 eps: the small one does not
    assert M.spectral_summary(X, metrics=("rank_deficiency",), source_dtype=torch.bfloat16)["rank_deficiency"] == 0.5
    base_dir, sft_dir = save_pair("olmo2")
    bf16 = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu", dtype="bfloat16")
    seen = []
    original = M.spectral_summary
    monkeypatch.setattr(M, "spectral_summary", lambda *a, **k: seen.append(k.get("source_dtype")) or original(*a, **k))
    mbt.analyze(bf16, TEXTS, metrics=["rank_deficiency"], cache=False, progress=False)
    assert seen and set(seen) == {torch.bfloat16}


def test_cache_hit_is_announced_and_needs_no_weights(pair, save_pair, tmp_path, capsys):
    base_dir, sft_dir = save_pair("olmo2")
    kwargs = dict(metrics=["cka"], cache=tmp_path, n_bootstrap=0)
    lazy = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu", sequential=True)
    first = mbt.analyze(lazy, TEXTS, progress=False, **kwargs)
    capsys.readouterr()
    again = mbt.analyze(_unloadable(lazy), TEXTS, progress=False, **kwargs)  # a hit: no model is loaded
    pd.testing.assert_frame_equal(first, again)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mbt: cached analyze result")
    # an eager pair of the same folders has the same identity, hence the same key
    assert identity.pair_identity(pair) == identity.pair_identity(lazy)


def test_texts_joined_differently_get_different_keys(pair, tmp_path):
    a = ["the cat\0sat on the mat", "a dog ran"]
    b = ["the cat", "sat on the mat\0a dog ran"]
    conv = M.resolve_conventions("standard")
    keys = [analysis.analyze_key(pair, t, chosen=["cka"], conventions=conv, n_token=0, max_length=64,
                                 n_bootstrap=0, seed=0)[0] for t in (a, b)]
    assert keys[0] != keys[1]


def test_relative_mean_shift_is_scale_free_with_a_paired_interval():
    from mbt.metrics import resampling as R
    from mbt.metrics import resolve_conventions

    conv = resolve_conventions("standard")
    rng = np.random.default_rng(0)
    base = torch.as_tensor(rng.normal(1.0, 1.0, size=(200, 8)))
    idx = rng.integers(0, 200, size=(300, 200))
    for scale in (1.0, 50.0):  # SFT = 1.02·Base: |c − 1| in every resample, whatever the norm
        reps = R.pair_replicates(scale * base, scale * 1.02 * base, idx, ["relative_mean_shift"], conv)
        np.testing.assert_allclose(reps["relative_mean_shift"], 0.02, rtol=1e-9)
    shift = torch.zeros(8, dtype=torch.float64)
    shift[0] = 0.5
    sft = base + shift + torch.as_tensor(rng.normal(0, 1.0, size=base.shape))
    reps = R.pair_replicates(base, sft, idx, ["relative_mean_shift"], conv)["relative_mean_shift"]
    expected = float(np.linalg.norm(sft.mean(0) - base.mean(0)) / np.linalg.norm(base.mean(0)))
    low, high = np.quantile(reps, [0.025, 0.975])
    assert low < expected < high and high - low < expected


def test_every_row_carries_joint_replicates_and_its_interval_is_theirs(pair):
    frame = mbt.analyze(pair, TEXTS, cache=False, progress=False, n_bootstrap=64)
    for _, row in frame.iterrows():
        reps = np.asarray(row["replicates"], float)
        if row["metric"] == "cka_debiased":
            assert reps.size == 0 and np.isnan(row["ci_low"])
            continue
        assert reps.size == 64, (row["model"], row["metric"])
        finite = reps[np.isfinite(reps)]
        if finite.size >= 2:
            assert (row["ci_low"], row["ci_high"]) == pytest.approx(tuple(np.quantile(finite, [0.025, 0.975])))
    # paired: SFT − Base replicates of a pooled metric are the difference of the two models' replicates
    rows = frame.set_index(["model", "metric", "layer"])
    for layer in (1, 3):
        diff = np.asarray(rows.loc[("pair", "delta_effective_rank", layer), "replicates"])
        np.testing.assert_allclose(diff, np.asarray(rows.loc[("sft", "effective_rank", layer), "replicates"])
                                   - np.asarray(rows.loc[("base", "effective_rank", layer), "replicates"]))
    none = mbt.analyze(pair, TEXTS, cache=False, progress=False, n_bootstrap=0)
    assert none["ci_low"].isna().all() and all(len(r) == 0 for r in none["replicates"])
