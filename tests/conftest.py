"""Shared fixtures: tiny random checkpoints of several architectures, saved locally.

Nothing here downloads: a byte-level BPE tokenizer is trained on a few sentences and tiny models
are built from configs with fixed seeds, then written with ``save_pretrained``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from hub_fixture import offline_hub, offline_models  # noqa: F401  (fixtures: an offline Hugging Face cache)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
torch.set_num_threads(2)

REPO = Path(__file__).resolve().parent.parent
"""The repository root (tests live in tests/ and its subfolders, so no test computes it from its own path)."""

SLOW_FILES = ("integration/", "paper/findings/test_calibration.py", "tune/test_sweeps.py", "toy/", "test_workers.py")
"""Test files (relative to tests/) whose every test carries the ``slow`` mark: the notebooks, packaging, faults
and calibration suites, real sweeps, toy builds and worker processes. ``make test-fast`` runs the rest."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark every test of :data:`SLOW_FILES` ``slow`` (tests elsewhere may carry the mark themselves)."""
    tests = Path(__file__).resolve().parent
    for item in items:
        rel = Path(str(item.path)).resolve().relative_to(tests).as_posix()
        if any(rel == f or (f.endswith("/") and rel.startswith(f)) for f in SLOW_FILES):
            item.add_marker(pytest.mark.slow)


def randn(*shape: int, seed: int = 0) -> torch.Tensor:
    """Seeded standard normal float64 tensor of ``shape``."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=torch.float64)


def orthogonal(d: int, seed: int = 0) -> torch.Tensor:
    """A seeded random orthogonal ``(d, d)`` matrix (QR of a Gaussian, signs fixed)."""
    q, r = torch.linalg.qr(randn(d, d, seed=seed))
    return q * torch.sign(torch.diagonal(r))


CORPUS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: Tom has 3 apples and buys 4 more. How many apples does he have?",
    "Answer: Tom has 3 + 4 = <<3+4=7>>7 apples. #### 7",
    "A) red B) green C) blue D) yellow",
    "def add(a, b):\n    return a + b",
    "Numbers like 1,234.5 and -7 appear in text, as do café and naïve.",
]

TEXTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Question: Tom has 3 apples. Answer: 3",
    "def add(a, b): return a + b",
    "fox",
    "Numbers like 1,234.5 and -7 appear in text, as do many other words in long sentences.",
    "A) red B) green",
    "lazy dog lazy dog lazy dog",
    "Tom buys 4 more apples.",
    "naïve café",
    "the the the the the the the the the the the the",
]


def make_tokenizer(vocab_size: int = 320, *, corpus: Sequence[str] | None = None,
                   specials: tuple[str, str, str] = ("<pad>", "<bos>", "<eos>"), prepend_bos: bool = False):
    """A deterministic byte-level BPE tokenizer with pad/bos/eos tokens.

    Args:
        vocab_size: BPE vocabulary size, special tokens included.
        corpus: training texts (default: this module's ``CORPUS`` four times).
        specials: the pad, BOS and EOS token strings.
        prepend_bos: encode with BOS in front (``"<bos> $A"``, pairs ``"<bos> $A <bos> $B"``).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    pad, bos, eos = specials
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4 if corpus is None else corpus, trainer)
    if prepend_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=pad, bos_token=bos, eos_token=eos)


def _config(arch: str, vocab: int, n_layers: int, hidden: int):
    from transformers import GPTNeoXConfig, LlamaConfig, MistralConfig, Olmo2Config, Qwen2Config

    common = dict(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=n_layers,
        num_attention_heads=4,
        max_position_embeddings=128,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
    )
    if arch == "olmo2":
        return Olmo2Config(num_key_value_heads=4, **common)
    if arch == "mistral":
        return MistralConfig(num_key_value_heads=2, sliding_window=None, **common)
    if arch == "llama":
        return LlamaConfig(num_key_value_heads=2, **common)
    if arch == "qwen2":
        return Qwen2Config(num_key_value_heads=2, **common)
    if arch == "gpt_neox":
        return GPTNeoXConfig(rotary_pct=0.25, **common)
    raise ValueError(arch)


ARCHS = ("olmo2", "mistral", "qwen2", "gpt_neox", "llama")


def make_model(arch: str = "olmo2", *, n_layers: int = 3, hidden: int = 32, seed: int = 0, vocab: int = 320):
    """A tiny random causal LM in eval mode, fp32."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(arch, vocab, n_layers, hidden))
    # random init leaves norms at 1; perturb them so a wrongly applied/skipped norm is visible
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                param.add_(0.5 * torch.randn_like(param))
    return model.eval()


@pytest.fixture(scope="session")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="session")
def save_pair(tmp_path_factory, tokenizer) -> Callable[..., tuple[Path, Path]]:
    """Factory: write a Base/SFT pair of tiny checkpoints and return their folders."""
    cache: dict[tuple, tuple[Path, Path]] = {}

    def _save(arch: str = "olmo2", *, base_layers: int = 3, sft_layers: int | None = None, hidden: int = 32,
              sft_hidden: int | None = None, sft_tokenizer=None) -> tuple[Path, Path]:
        key = (arch, base_layers, sft_layers, hidden, sft_hidden, id(sft_tokenizer))
        if key in cache:
            return cache[key]
        root = tmp_path_factory.mktemp(f"pair-{arch}")
        for role, layers, width, seed, tok in (
            ("base", base_layers, hidden, 0, tokenizer),
            ("sft", sft_layers or base_layers, sft_hidden or hidden, 1, sft_tokenizer or tokenizer),
        ):
            model = make_model(arch, n_layers=layers, hidden=width, seed=seed)
            model.save_pretrained(root / role)
            tok.save_pretrained(root / role)
        cache[key] = (root / "base", root / "sft")
        return cache[key]

    return _save


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's tests on one torch thread: tiny matrices gain nothing from more, and one
    thread never stalls on a busy 2-core machine. Use with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    from mbt.cpu import pinned_threads

    with pinned_threads(1):
        yield


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Keep result caches and toy builds of the test run out of the user's cache folder."""
    old = os.environ.get("MBT_CACHE")
    os.environ["MBT_CACHE"] = str(tmp_path_factory.mktemp("mbt-cache"))
    yield
    if old is None:
        os.environ.pop("MBT_CACHE", None)
    else:
        os.environ["MBT_CACHE"] = old


SWEEP = dict(task="toy-math", rank=4, steps=2, batch_size=4, n_train=16, n_test=4, eval_batch_size=4, n_retention=4,
             threads=1, progress=False)
"""The smallest LoRA sweep recipe the sweep tests share (two steps, a handful of items)."""


@pytest.fixture(scope="session")
def sweep_base(tmp_path_factory, tokenizer):
    """A saved 5-block OLMo2 Base folder for LoRA sweep tests."""
    path = tmp_path_factory.mktemp("sweep-base") / "base"
    make_model("olmo2", n_layers=5, hidden=32).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def base_dir(sweep_base):
    """The shared 5-block Base folder (:func:`sweep_base`), under the name the LoRA and loading tests use."""
    return sweep_base
