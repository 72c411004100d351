"""The toy pair builder: determinism, reuse, corruption handling, manifest, loadable checkpoints."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoTokenizer

from mbt import toy

pytestmark = pytest.mark.slow


def _tensors(root: Path, which: str) -> dict[str, torch.Tensor]:
    return load_file(str(root / which / "model.safetensors"))


def _mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def builds(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    threads = torch.get_num_threads()
    a = toy.build(root / "a", size="tiny", progress=False)
    b = toy.build(root / "b", size="tiny", progress=False)
    assert torch.get_num_threads() == threads  # the build pins its own thread count and restores ours
    return root, a, b


def test_two_builds_are_bit_identical(builds):
    _, a, b = builds
    for which in ("base", "sft"):
        ta, tb = _tensors(a, which), _tensors(b, which)
        assert ta.keys() == tb.keys()
        for key in ta:
            assert torch.equal(ta[key], tb[key]), (which, key)
    ma, mb = (json.loads((p / "manifest.json").read_text()) for p in (a, b))
    assert ma["files"] == mb["files"]
    # Base and SFT really differ, in every block
    tb_, ts_ = _tensors(a, "base"), _tensors(a, "sft")
    changed = {k for k in tb_ if not torch.equal(tb_[k], ts_[k])}
    for layer in range(toy.SIZES["tiny"].n_layers):
        assert f"model.layers.{layer}.self_attn.q_proj.weight" in changed


def test_second_call_reuses_the_build(builds, monkeypatch):
    _, a, _ = builds
    before = _mtimes(a)

    def boom(*args, **kwargs):
        raise AssertionError("retrained although a valid build exists")

    monkeypatch.setattr(toy.builder, "_build_into", boom)
    monkeypatch.setattr(toy.builder, "_run_build", boom)
    assert toy.build(a, size="tiny", progress=False) == a
    assert _mtimes(a) == before
    assert toy.find_build(size="tiny", out_dir=a) == a
    assert toy.is_valid(a) and toy.is_valid(a, seed=0, size="tiny", variant="toy")
    assert not toy.is_valid(a, seed=1, size="tiny", variant="toy")


def test_truncated_safetensors_is_detected_and_rebuilt(builds):
    root, a, _ = builds
    c = root / "c"
    shutil.copytree(a, c)
    path = c / "sft" / "model.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    problem = toy.check_build(c)
    assert problem is not None and "model.safetensors" in problem
    assert not toy.is_valid(c)
    with pytest.warns(RuntimeWarning, match="truncated"):
        assert toy.build(c, size="tiny", progress=False) == c
    assert toy.check_build(c) is None
    for which in ("base", "sft"):
        ta, tc = _tensors(a, which), _tensors(c, which)
        assert all(torch.equal(ta[k], tc[k]) for k in ta)
    assert not list(root.glob(".c.*tmp*")) and not list(root.glob(".c.old*"))


def test_flipped_byte_and_missing_manifest_are_detected(builds):
    root, a, _ = builds
    d = root / "d"
    shutil.copytree(a, d)
    path = d / "base" / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    assert "sha256" in toy.check_build(d)
    (d / "manifest.json").unlink()
    assert "manifest.json is missing" in toy.check_build(d)
    with pytest.warns(RuntimeWarning, match="missing"):
        toy.build(d, size="tiny", progress=False)
    assert toy.is_valid(d, seed=0, size="tiny")


def test_refuses_to_overwrite_a_foreign_directory(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        toy.build(tmp_path, size="tiny", progress=False)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_manifest_fields(builds):
    _, a, _ = builds
    m = json.loads((a / "manifest.json").read_text())
    cfg = toy.SIZES["tiny"]
    assert m["seed"] == 0 and m["variant"] == "toy" and m["size"] == "tiny"
    assert m["config"] == json.loads(json.dumps(dataclasses.asdict(cfg)))
    assert m["threads"] == cfg.threads
    assert m["settings_hash"] == toy.settings_hash(seed=0, size="tiny", variant="toy")
    assert m["recipe_version"] == toy.RECIPE_VERSION
    for pkg in ("python", "torch", "transformers", "tokenizers"):
        assert m["versions"][pkg]
    for rel in ("base/model.safetensors", "sft/model.safetensors", "base/tokenizer.json", "sft/config.json"):
        assert len(m["files"][rel]["sha256"]) == 64
    assert set(m["timings_s"]) >= {"data", "tokenizer", "pretrain", "sft", "quality", "total"}
    q = m["quality"]
    for key in ("base_0shot", f"base_{cfg.eval_shots}shot", "sft_0shot", "base_answer_nll", "sft_answer_nll",
                "gap_points"):
        assert key in q["toy_math"]
    assert q["toy_math"]["n"] == cfg.eval_n
    assert len(q["cka"]["values"]) == cfg.n_layers + 1
    assert all(0.0 <= v <= 1.0 + 1e-9 for v in q["cka"]["values"])
    assert [r["layer"] for r in q["weight_change"]] == list(range(1, cfg.n_layers + 1))
    assert all(r["attn_abs"] > 0 and r["mlp_rel"] > 0 for r in q["weight_change"])
    assert "base_0shot" in q["toy_mc"]
    assert m["training"]["pretrain_loss"][0][1] > m["training"]["pretrain_loss"][-1][1]


def test_checkpoints_load_with_auto_classes(builds):
    _, a, _ = builds
    base = AutoModelForCausalLM.from_pretrained(a / "base")
    sft = AutoModelForCausalLM.from_pretrained(a / "sft")
    assert type(base).__name__ == type(sft).__name__ == "Olmo2ForCausalLM"
    assert (a / "base" / "config.json").read_text() == (a / "sft" / "config.json").read_text()
    assert base.config.num_hidden_layers == toy.SIZES["tiny"].n_layers
    assert not base.config.tie_word_embeddings
    assert {k: v.shape for k, v in base.state_dict().items()} == {k: v.shape for k, v in sft.state_dict().items()}
    tok = AutoTokenizer.from_pretrained(a / "base")
    assert (a / "base" / "tokenizer.json").read_bytes() == (a / "sft" / "tokenizer.json").read_bytes()
    assert (tok.pad_token, tok.bos_token, tok.eos_token) == ("<|pad|>", "<|bos|>", "<|eos|>")
    assert (tok.pad_token_id, tok.bos_token_id, tok.eos_token_id) == (0, 1, 2)
    ids = tok("Tom has 3 apples.")["input_ids"]
    assert ids[0] == tok.bos_token_id and tok.decode(ids, skip_special_tokens=True) == "Tom has 3 apples."
    with torch.no_grad():
        out = base(**tok(["Tom has 3 apples.", "Hi"], return_tensors="pt", padding=True))
    assert out.logits.shape[-1] == len(tok)


def test_default_dir_rule(monkeypatch, tmp_path):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    h = toy.settings_hash(seed=3, size="tiny", variant="seen")
    assert toy.default_dir(seed=3, size="tiny", variant="seen") == tmp_path / "toy" / f"seen-tiny-seed3-{h[:10]}"
    monkeypatch.delenv("MBT_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert toy.cache_root() == tmp_path / "xdg" / "mbt"
    hashes = {toy.settings_hash(seed=s, size=z, variant=v) for s in (0, 1) for z in ("tiny", "default")
              for v in ("toy", "seen")}
    assert len(hashes) == 8
    with pytest.raises(ValueError, match="default, tiny"):
        toy.build(tmp_path / "x", size="huge")
    with pytest.raises(ValueError, match="toy, seen"):
        toy.build(tmp_path / "x", size="tiny", variant="web")


def test_default_location_seed_and_variant(builds, monkeypatch, tmp_path):
    _, a, _ = builds
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    assert toy.find_build(seed=1, size="tiny", variant="seen") is None
    path = toy.build(seed=1, size="tiny", variant="seen", progress=False)
    assert path == toy.default_dir(seed=1, size="tiny", variant="seen")
    assert toy.find_build(seed=1, size="tiny", variant="seen") == path
    m = json.loads((path / "manifest.json").read_text())
    assert (m["seed"], m["variant"]) == (1, "seen")
    ta, ts = _tensors(a, "base"), _tensors(path, "base")
    assert not all(torch.equal(ta[k], ts[k]) for k in ta if ta[k].shape == ts[k].shape)


class _Trained(Exception):
    pass


def test_multithreaded_build_runs_in_process_when_the_spin_is_in_effect(tmp_path, monkeypatch):
    # no start-up guess at how busy the CPUs are: the bounded spin in effect is enough
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(toy.builder.cpu, "_configured", {"set": True, "torch_first": False})
    cfg = dataclasses.replace(toy.SIZES["tiny"], name="tiny-2threads", threads=2)

    def train_here(*args, **kwargs):
        raise _Trained

    monkeypatch.setattr(toy.builder, "_build_into", train_here)
    with pytest.raises(_Trained):
        toy.build(tmp_path / "t2", size=cfg, progress=False)


def test_multithreaded_build_after_torch_was_loaded_runs_in_a_child_with_the_spin(tmp_path, monkeypatch):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
    monkeypatch.setattr(toy.builder.cpu, "_configured", {"set": True, "torch_first": True})
    cfg = dataclasses.replace(toy.SIZES["tiny"], name="tiny-2threads", threads=2)
    seen = {}

    def popen(cmd, env, **kwargs):
        seen.update(env)
        raise _Trained

    monkeypatch.setattr(toy.builder, "_build_into", lambda *a, **k: pytest.fail("trained in the parent"))
    monkeypatch.setattr(toy.builder.subprocess, "Popen", popen)
    with pytest.raises(_Trained):
        toy.build(tmp_path / "t3", size=cfg, progress=False)
    assert seen["GOMP_SPINCOUNT"] == str(toy.builder.cpu.SPINCOUNT) and "OMP_WAIT_POLICY" not in seen
