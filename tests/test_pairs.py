from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import TEXTS, make_tokenizer

import mbt
from mbt import pairs, trace

PAPER_IDS = {
    "olmo2-1b": ("allenai/OLMo-2-0425-1B", "allenai/OLMo-2-0425-1B-SFT"),
    "olmo2-7b": ("allenai/OLMo-2-1124-7B", "allenai/OLMo-2-1124-7B-SFT"),
    "olmo2-13b": ("allenai/OLMo-2-1124-13B", "allenai/OLMo-2-1124-13B-SFT"),
    "olmo2-32b": ("allenai/OLMo-2-0325-32B", "allenai/OLMo-2-0325-32B-SFT"),
    "mistral-7b": ("mistralai/Mistral-7B-v0.1", "mistralai/Mistral-7B-Instruct-v0.1"),
}


def test_registry_holds_the_papers_pairs():
    for name, (base, sft) in PAPER_IDS.items():
        spec = mbt.PAIRS[name]
        assert (spec.base, spec.sft) == (base, sft)
    assert "toy" in mbt.PAIRS and mbt.PAIRS["toy"].source == "toy"
    with pytest.raises(dataclasses.FrozenInstanceError):
        mbt.PAIRS["olmo2-1b"].base = "x"


def test_later_stages_are_optional_extra_comparisons():
    dpo = mbt.PAIRS["olmo2-7b"].stage("dpo")
    assert (dpo.base, dpo.sft) == ("allenai/OLMo-2-1124-7B", "allenai/OLMo-2-1124-7B-DPO")
    with pytest.raises(ValueError, match="known stages: dpo, instruct"):
        mbt.PAIRS["olmo2-13b"].stage("rlhf")


def test_unknown_pair_name_lists_the_valid_names():
    with pytest.raises(ValueError) as err:
        mbt.load_pair("olmo3-1b")
    for name in mbt.PAIRS:
        assert name in str(err.value)


def test_arguments_must_name_one_pair():
    with pytest.raises(ValueError, match="not both"):
        mbt.load_pair("olmo2-1b", base="a", sft="b")
    with pytest.raises(ValueError, match="both base= and sft="):
        mbt.load_pair(base="a")


@pytest.mark.parametrize("arch", ["olmo2", "mistral", "gpt_neox"])
def test_load_local_pair_wraps_both_models(arch, save_pair):
    base_dir, sft_dir = save_pair(arch)
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu")
    assert pair.n_layers == 3 and pair.hidden_size == 32
    assert type(pair.base).__name__ == "TransformersModel"
    assert trace.unwrap(pair.base).dtype == torch.float32
    # Base and SFT are different checkpoints, loaded from their own folders
    ids = trace.encode(pair.tokenizer, TEXTS[:2], max_length=32)
    base_states = trace.collect_layers(pair.base, ids, layers=[1], progress=False)[1]
    sft_states = trace.collect_layers(pair.sft, ids, layers=[1], progress=False)[1]
    assert not torch.allclose(base_states[0], sft_states[0])
    assert pair.tokenizer.padding_side == "right"


def test_dtype_argument_is_honoured(save_pair):
    base_dir, sft_dir = save_pair("olmo2")
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu", dtype="bfloat16")
    assert trace.unwrap(pair.sft).dtype == torch.bfloat16
    with pytest.raises(ValueError, match="unknown dtype"):
        mbt.load_pair(base=str(base_dir), sft=str(sft_dir), dtype="float99")


def test_pair_of_different_depths_is_refused_before_loading_weights(save_pair, monkeypatch):
    base_dir, sft_dir = save_pair("olmo2", base_layers=4, sft_layers=6)

    def no_weights(*a, **k):
        raise AssertionError("weights were loaded before validation")

    import transformers

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", no_weights)
    with pytest.raises(pairs.PairMismatchError, match="base has 4 layers, sft has 6"):
        mbt.load_pair(base=str(base_dir), sft=str(sft_dir))


def test_pair_of_different_widths_is_refused(save_pair):
    base_dir, sft_dir = save_pair("olmo2", hidden=32, sft_hidden=64)
    with pytest.raises(pairs.PairMismatchError, match="base has 32 hidden size, sft has 64"):
        mbt.load_pair(base=str(base_dir), sft=str(sft_dir))


def test_pair_whose_tokenizers_disagree_is_refused(save_pair):
    other = make_tokenizer(vocab_size=290)  # same algorithm, fewer merges: different ids
    base_dir, sft_dir = save_pair("olmo2", sft_tokenizer=other)
    with pytest.raises(pairs.PairMismatchError, match="tokenizers disagree on the probe text"):
        mbt.load_pair(base=str(base_dir), sft=str(sft_dir))


def test_missing_model_offline_gives_a_clear_error(tmp_path):
    with pytest.raises(RuntimeError, match="save_pretrained"):
        mbt.load_pair(base=str(tmp_path / "nope"), sft=str(tmp_path / "nope2"))


def test_hub_revisions_are_recorded(save_pair):
    base_dir, sft_dir = save_pair("olmo2")
    spec = pairs.PairSpec("x", str(base_dir), str(sft_dir), "custom")
    assert spec.base_revision is None
    pair = mbt.load_pair(base=str(base_dir), sft=str(sft_dir), device="cpu", sft_revision="main")
    assert pair.spec.sft_revision == "main" and pair.spec.base_revision is None


def test_folder_label(tmp_path):
    (tmp_path / "toy-tiny-seed0-abc" / "base").mkdir(parents=True)
    (tmp_path / "toy-tiny-seed0-abc" / "sft").mkdir()
    build = tmp_path / "toy-tiny-seed0-abc"
    assert pairs.folder_label(str(build / "base"), str(build / "sft")) == "toy-tiny-seed0-abc"
    assert pairs.folder_label("/a/base-model", "/b/sft-model") == "base-model vs sft-model"
    hub = pairs.folder_label("allenai/OLMo-2-0425-1B", "allenai/OLMo-2-0425-1B-SFT")
    assert hub == "OLMo-2-0425-1B vs OLMo-2-0425-1B-SFT"


def test_every_registered_pair_is_listed_and_a_bad_entry_is_refused(capsys):
    from mbt import cli

    assert cli.main(["pairs"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == list(mbt.PAIRS)
    assert all(name == spec.name and spec.description for name, spec in mbt.PAIRS.items())
    for bad, match in (({"name": "../x"}, "plain label"), ({"sft": ""}, "both a Base and an SFT"),
                       ({"family": ""}, "needs a family"), ({"source": "ftp"}, "source must be")):
        with pytest.raises(ValueError, match=match):
            dataclasses.replace(mbt.PAIRS["olmo2-1b"], **bad)
