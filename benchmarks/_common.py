"""Shared pieces of the benchmarks: a synthetic tokenizer and texts, random OLMo2 pairs, peak memory."""

from __future__ import annotations

import os
import random
import resource
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

WORDS = ("the model layer token fine tune base answer question residual stream norm head data text "
         "value number seven three apple river city moves reads writes learns forgets keeps small large").split()

#: Published dimensions of the paper's OLMo 2 models (config.json of each Hub checkpoint).
OLMO2_DIMS: dict[str, dict[str, int]] = {
    "olmo2-1b": dict(hidden=2048, layers=16, heads=16, kv_heads=16, intermediate=8192, vocab=100352),
    "olmo2-7b": dict(hidden=4096, layers=32, heads=32, kv_heads=32, intermediate=11008, vocab=100352),
    "olmo2-13b": dict(hidden=5120, layers=40, heads=40, kv_heads=40, intermediate=13824, vocab=100352),
    "olmo2-32b": dict(hidden=5120, layers=64, heads=40, kv_heads=8, intermediate=27648, vocab=100352),
}


def texts(n: int, *, seed: int = 0, min_words: int = 12, max_words: int = 110) -> list[str]:
    """``n`` synthetic texts of random words (seeded)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))) for _ in range(n)]


def tokenizer(vocab: int = 2048) -> Any:
    """A byte-level BPE tokenizer trained on the synthetic words (deterministic)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<pad>", "<bos>", "<eos>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts(500, seed=1), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", bos_token="<bos>", eos_token="<eos>")


def olmo2_config(*, hidden: int, layers: int, heads: int, kv_heads: int, intermediate: int, vocab: int) -> Any:
    """An OLMo2 config with the given dimensions."""
    from transformers import Olmo2Config

    return Olmo2Config(vocab_size=vocab, hidden_size=hidden, intermediate_size=intermediate, num_hidden_layers=layers,
                       num_attention_heads=heads, num_key_value_heads=kv_heads, max_position_embeddings=4096,
                       pad_token_id=0, bos_token_id=1, eos_token_id=2)


def random_model(config: Any, *, seed: int, dtype: Any = None, device: str = "cpu") -> Any:
    """A random-initialised causal LM built directly in ``dtype`` on ``device``, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype or torch.float32)
    return model.eval()


def model_bytes(model: Any) -> int:
    """Bytes of a model's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RssSampler:
    """Samples this process's current RSS every ``interval`` seconds in a thread; ``peak_mb`` above the start.

    Unlike ``ru_maxrss`` (a lifetime peak) this measures growth from the moment the sampler starts.
    """

    def __init__(self, interval: float = 0.005) -> None:
        import threading

        import psutil

        self._proc = psutil.Process()
        self._interval = interval
        self._stop = threading.Event()
        self.start_mb = self._proc.memory_info().rss / 2**20
        self.max_mb = self.start_mb
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.max_mb = max(self.max_mb, self._proc.memory_info().rss / 2**20)
            self._stop.wait(self._interval)

    def stop(self) -> float:
        """Stop sampling; return the peak growth in MiB."""
        self._stop.set()
        self._thread.join()
        self.max_mb = max(self.max_mb, self._proc.memory_info().rss / 2**20)
        return self.max_mb - self.start_mb


def lazy_pair(tok: Any, config: Any, *, dtype: Any = None, device: str = "cpu", sequential: bool = True) -> Any:
    """A random Base/SFT pair (seeds 0 and 1) as a :class:`mbt.pairs.ModelPair`, optionally sequential."""
    from mbt import trace
    from mbt.pairs import ModelPair, PairSpec

    def loader(seed: int) -> Callable[[], Any]:
        return lambda: trace.wrap(random_model(config, seed=seed, dtype=dtype, device=device), tok)

    loaders = {"base": loader(0), "sft": loader(1)}
    spec = PairSpec("random", "random-base", "random-sft", "bench")
    args = (tok, spec, config.num_hidden_layers, config.hidden_size)
    if sequential:
        return ModelPair(None, None, *args, loaders=loaders, dtype=dtype)
    return ModelPair(loaders["base"](), loaders["sft"](), *args, dtype=dtype)


def lm_head_share(*, hidden: int, layers: int, intermediate: int, vocab: int, tokens: int) -> float:
    """Share of an OLMo2 forward pass's multiply-adds spent in the LM head, for ``tokens``-token texts.

    Per token and layer: ``4·hidden²`` (q, k, v, o projections, full multi-head attention),
    ``3·hidden·intermediate`` (gated MLP) and ``2·tokens·hidden`` (attention scores and their
    weighted sum over a full ``tokens`` × ``tokens`` matrix, as eager attention computes it);
    the LM head adds ``hidden·vocab`` per token.
    """
    per_layer = 4 * hidden * hidden + 3 * hidden * intermediate + 2 * tokens * hidden
    head = hidden * vocab
    return head / (layers * per_layer + head)


def loadavg() -> str:
    """The first three fields of ``/proc/loadavg`` (or ``n/a``): other jobs shift every benchmark number."""
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"
