"""Base/SFT model pairs: the registry of the paper's pairs and `load_pair`.

A pair is validated *before* any weights are loaded: both configs must agree on depth and width,
and both tokenizers must map a set of probe texts to identical token ids. Only then are the models
loaded (native dtype: bf16 on CUDA, fp32 on CPU) and wrapped for nnsight tracing.
"""

from __future__ import annotations

import dataclasses
import gc
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mbt import toy, trace
from mbt.loading import hf_progress_bars, is_load_failure, load_failure

__all__ = [
    "PAIRS",
    "PROBE_TEXTS",
    "ModelPair",
    "PairMismatchError",
    "PairSpec",
    "check_configs",
    "check_tokenizers",
    "get_pair",
    "folder_label",
    "load_pair",
    "pair_label",
    "resolve_toy",
]


@dataclass(frozen=True)
class PairSpec:
    """A Base model and its supervised fine-tuned (SFT) checkpoint.

    Attributes:
        name: Registry key, e.g. ``"olmo2-7b"``.
        base: Hub id or local folder of the Base (pretrained) model.
        sft: Hub id or local folder of the SFT model.
        family: Model family (``"olmo2"``, ``"mistral"``, ``"toy"``, ``"custom"``).
        base_revision: Hub revision (branch, tag or commit) of the Base model; ``None`` = main.
        sft_revision: Hub revision of the SFT model.
        description: One line for listings.
        extras: Optional later training stages of the same family as ``(stage, hub id)`` pairs
            (e.g. DPO, Instruct), for extra Base-vs-stage comparisons via :meth:`stage`.
        source: ``"hub"`` (ids or folders) or ``"toy"`` (built offline by :mod:`mbt.toy`).
        toy_variant: for ``source="toy"``, the build variant (:data:`mbt.toy.VARIANTS`).
        toy_sft_steps: for a rung of the SFT-intensity ladder (:mod:`mbt.toy.ladder`), its SFT steps.
        toy_sft_seed: for a replicate of a rung, its replicate number (its SFT data order is
            :func:`mbt.toy.data_order`; the Base is the same).
    """

    name: str
    base: str
    sft: str
    family: str
    base_revision: str | None = None
    sft_revision: str | None = None
    description: str = ""
    extras: tuple[tuple[str, str], ...] = field(default=())
    source: str = "hub"
    toy_variant: str | None = None
    toy_sft_steps: int | None = None
    toy_sft_seed: int | None = None

    def __post_init__(self) -> None:
        if not self.name or self.name in (".", "..") or any(c in self.name for c in "/\\\0"):
            raise ValueError(f"a pair's name must be a plain label (no path separators, not '.' or '..'), "
                             f"got {self.name!r}")
        if not self.base or not self.sft:
            raise ValueError(f"pair {self.name!r} needs both a Base and an SFT model")
        if not self.family:
            raise ValueError(f"pair {self.name!r} needs a family (e.g. 'olmo2', 'mistral', 'custom')")
        if self.source not in ("hub", "toy"):
            raise ValueError(f"pair {self.name!r}: source must be 'hub' or 'toy', got {self.source!r}")
        if self.source == "toy" and self.toy_variant is None:
            raise ValueError(f"toy pair {self.name!r} needs a toy_variant")

    def stage(self, stage: str) -> PairSpec:
        """Return the pair Base vs a later stage (e.g. ``"dpo"``) instead of Base vs SFT.

        Raises:
            ValueError: If the family has no such stage; the message lists the known stages.
        """
        stages = dict(self.extras)
        if stage not in stages:
            known = ", ".join(sorted(stages)) or "none"
            raise ValueError(f"pair {self.name!r} has no stage {stage!r}; known stages: {known}")
        return dataclasses.replace(
            self, name=f"{self.name}-{stage}", sft=stages[stage], sft_revision=None, extras=()
        )


def _olmo2(size: str, base: str, stages: dict[str, str]) -> PairSpec:
    return PairSpec(
        name=f"olmo2-{size}",
        base=base,
        sft=f"{base}-SFT",
        family="olmo2",
        description=f"OLMo 2 {size.upper()} Base vs its SFT checkpoint (paper §4)",
        extras=tuple(sorted(stages.items())),
    )


PAIRS: dict[str, PairSpec] = {
    spec.name: spec
    for spec in (
        _olmo2(
            "1b",
            "allenai/OLMo-2-0425-1B",
            {
                "dpo": "allenai/OLMo-2-0425-1B-DPO",
                "rlvr": "allenai/OLMo-2-0425-1B-RLVR1",
                "instruct": "allenai/OLMo-2-0425-1B-Instruct",
            },
        ),
        _olmo2(
            "7b",
            "allenai/OLMo-2-1124-7B",
            {"dpo": "allenai/OLMo-2-1124-7B-DPO", "instruct": "allenai/OLMo-2-1124-7B-Instruct"},
        ),
        _olmo2(
            "13b",
            "allenai/OLMo-2-1124-13B",
            {"dpo": "allenai/OLMo-2-1124-13B-DPO", "instruct": "allenai/OLMo-2-1124-13B-Instruct"},
        ),
        _olmo2(
            "32b",
            "allenai/OLMo-2-0325-32B",
            {"dpo": "allenai/OLMo-2-0325-32B-DPO", "instruct": "allenai/OLMo-2-0325-32B-Instruct"},
        ),
        PairSpec(
            name="mistral-7b",
            base="mistralai/Mistral-7B-v0.1",
            sft="mistralai/Mistral-7B-Instruct-v0.1",
            family="mistral",
            description="Mistral 7B v0.1 Base vs Instruct v0.1 (paper §4)",
        ),
        PairSpec(
            name="toy",
            base="toy:base",
            sft="toy:sft",
            family="toy",
            description="offline toy OLMo2 pair built by `mbt toy build` (CPU, minutes)",
            source="toy",
            toy_variant="toy",
        ),
        PairSpec(
            name="toy-seen",
            base="toy-seen:base",
            sft="toy-seen:sft",
            family="toy",
            description="toy pair whose pretraining already saw the instruction format's vocabulary",
            source="toy",
            toy_variant="seen",
        ),
        *(
            PairSpec(
                name=f"toy-sft{steps}",
                base=f"toy-sft{steps}:base",
                sft=f"toy-sft{steps}:sft",
                family="toy",
                description=f"SFT-intensity ladder: the toy Base after {steps} SFT steps (default pair: 300)",
                source="toy",
                toy_variant="toy",
                toy_sft_steps=steps,
            )
            for steps in toy.LADDER_STEPS
        ),
        *(
            PairSpec(
                name=toy.rung_name(steps, seed),
                base=f"{toy.rung_name(steps, seed)}:base",
                sft=f"{toy.rung_name(steps, seed)}:sft",
                family="toy",
                description=(f"the toy Base after {steps or toy.SIZES['default'].sft_steps} SFT steps in another data "
                             f"order (SFT seed {seed}; same Base, data and recipe)"),
                source="toy",
                toy_variant="toy",
                toy_sft_steps=steps,
                toy_sft_seed=seed,
            )
            for seed in toy.LADDER_SFT_SEEDS[1:]
            for steps in (*toy.LADDER_STEPS, None)
        ),
    )
}

#: Texts whose token ids both tokenizers of a pair must agree on (plain prose, digits, the
#: paper's prompt formats, whitespace and punctuation).
PROBE_TEXTS: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Question: Natalia sold clips to 48 of her friends in April.\nAnswer: 48/2 = <<48/2=24>>24 #### 72",
    "Question: Which planet is largest?\nA) Mars B) Venus C) Jupiter D) Earth\nAnswer: C",
    "def add(a, b):\n    return a + b  # 1,234.5 -7 3e-4",
    "   leading spaces, tabs\tand unicode: café, naïve, 東京",
)


class PairMismatchError(ValueError):
    """Raised when a Base and an SFT model cannot be compared layer by layer."""


class ModelPair:
    """A loaded (or lazily loadable), validated pair.

    Attributes:
        tokenizer: The shared tokenizer (validated to give both models identical token ids).
        spec: The pair's specification.
        n_layers: Number of decoder blocks ``L`` (layers ``0..L`` are analysed).
        hidden_size: Residual stream width ``D``.

    ``base`` and ``sft`` are the nnsight-wrapped models. A *sequential* pair (``load_pair(...,
    sequential=True)``) loads each model on first access and :meth:`release` frees it again, so an
    analysis that runs Base to completion before SFT holds one model at a time.
    """

    def __init__(
        self,
        base: Any,
        sft: Any,
        tokenizer: Any,
        spec: PairSpec,
        n_layers: int,
        hidden_size: int,
        *,
        loaders: dict[str, Callable[[], Any]] | None = None,
        dtype: torch.dtype | None = None,
        remote: bool = False,
    ) -> None:
        self._models: dict[str, Any] = {"base": base, "sft": sft}
        self.dtype = dtype
        self.remote = remote
        self._loaders = dict(loaders or {})
        self.tokenizer = tokenizer
        self.spec = spec
        self.n_layers = n_layers
        self.hidden_size = hidden_size

    @property
    def sequential(self) -> bool:
        """Whether models are loaded on demand and released after use."""
        return bool(self._loaders)

    def model(self, role: str) -> Any:
        """Return the ``"base"`` or ``"sft"`` model, loading it first if needed."""
        if role not in self._models:
            raise ValueError(f"role must be 'base' or 'sft', got {role!r}")
        if self._models[role] is None:
            if role not in self._loaders:
                raise RuntimeError(f"the {role} model was released and this pair cannot reload it")
            self._models[role] = self._loaders[role]()
        return self._models[role]

    @property
    def base(self) -> Any:
        """The Base model (nnsight-wrapped)."""
        return self.model("base")

    @property
    def sft(self) -> Any:
        """The SFT model (nnsight-wrapped)."""
        return self.model("sft")

    def is_loaded(self, role: str) -> bool:
        """Whether the model of ``role`` is in memory now."""
        return self._models[role] is not None

    def release(self, role: str) -> None:
        """Free the model of ``role`` (sequential pairs only; a no-op for eager pairs)."""
        if not self.sequential or self._models.get(role) is None:
            return
        self._models[role] = None
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def models(self) -> dict[str, Any]:
        """Return ``{"base": base, "sft": sft}`` (loads both; prefer :meth:`model` in sequential code)."""
        return {"base": self.base, "sft": self.sft}


def get_pair(name: str) -> PairSpec:
    """Look a pair up by name.

    Raises:
        ValueError: For an unknown name; the message lists every valid name.
    """
    try:
        return PAIRS[name]
    except KeyError:
        valid = ", ".join(sorted(PAIRS))
        raise ValueError(f"unknown pair {name!r}; valid names: {valid}") from None


def _config_dims(config: Any) -> dict[str, Any]:
    text = getattr(config, "text_config", None) or config
    return {
        "layers": getattr(text, "num_hidden_layers", None),
        "hidden size": getattr(text, "hidden_size", None),
        "architecture": getattr(config, "model_type", None),
        "vocabulary": getattr(text, "vocab_size", None),
    }


def check_configs(base_config: Any, sft_config: Any) -> None:
    """Refuse a pair whose depth or width differ; warn on other architecture differences.

    Raises:
        PairMismatchError: e.g. ``"base has 4 layers, sft has 6"``.
    """
    base, sft = _config_dims(base_config), _config_dims(sft_config)
    hard = [key for key in ("layers", "hidden size") if base[key] != sft[key]]
    if hard:
        diffs = "; ".join(f"base has {base[k]} {k}, sft has {sft[k]}" for k in hard)
        raise PairMismatchError(f"Base and SFT cannot be compared layer by layer: {diffs}")
    soft = [key for key in ("architecture", "vocabulary") if base[key] != sft[key]]
    for key in soft:
        warnings.warn(f"base and sft differ in {key}: {base[key]} vs {sft[key]}", stacklevel=3)


def check_tokenizers(base_tokenizer: Any, sft_tokenizer: Any, texts: tuple[str, ...] = PROBE_TEXTS) -> None:
    """Refuse a pair whose tokenizers map the same text to different token ids.

    Both models must see identical token ids for every sample (the book's "Methods and conventions").

    Raises:
        PairMismatchError: Naming the first text on which the token ids differ.
    """
    for text in texts:
        a = base_tokenizer(text)["input_ids"]
        b = sft_tokenizer(text)["input_ids"]
        if list(a) != list(b):
            first = next((i for i, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            raise PairMismatchError(
                "Base and SFT tokenizers disagree on the probe text "
                f"{text!r}: first difference at token {first} "
                f"(base ids {list(a)[first:first + 5]}, sft ids {list(b)[first:first + 5]}; "
                f"lengths {len(a)} vs {len(b)}). Both models must see identical token ids."
            )


def _default_device(device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _default_dtype(dtype: torch.dtype | str | None, device: torch.device, device_map: Any) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if isinstance(dtype, str):
        if not hasattr(torch, dtype) or not isinstance(getattr(torch, dtype), torch.dtype):
            raise ValueError(f"unknown dtype {dtype!r}; use e.g. 'float32', 'bfloat16' or 'float16'")
        return getattr(torch, dtype)
    on_gpu = device.type == "cuda" or (device_map is not None and torch.cuda.is_available())
    return torch.bfloat16 if on_gpu else torch.float32


def _hub_error(what: str, ident: str, exc: Exception) -> RuntimeError:
    offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0", "false", "False")
    hint = (
        " The Hugging Face Hub is disabled here (HF_HUB_OFFLINE=1) and the files are not in the local cache;"
        if offline
        else ""
    )
    return RuntimeError(
        f"could not load the {what} of {ident!r}.{hint} Pass a local folder saved with "
        f"`save_pretrained`, or download the model first. Original error: {exc}"
    )


def _named_path(ident: str) -> Path:
    """A folder given on the command line with ``~``, ``.`` and ``..`` resolved (a Hub id is only normalised)."""
    path = Path(str(ident)).expanduser()
    return path.resolve() if path.exists() else Path(os.path.normpath(path))


def _name(path: Path, role: str) -> str:
    return path.name if path.name.strip(". ") else role


def folder_label(base: str, sft: str) -> str:
    """Label of a pair given as two folders or Hub ids: a name, never a path.

    Two local folders in one parent folder (a toy build: ``<build>/base``, ``<build>/sft``) are named
    after the parent; anything else ``"<base name> vs <sft name>"``. ``~``, ``.`` and ``..`` are resolved
    first (``D/x/../base`` is ``D/base``), so a label is never empty, ``.`` or ``..``; a name that is a
    registered pair's (or its smoke run's) gets ``" (folders)"`` appended, so it never stands for, or
    shares a results store with, the registered pair.
    """
    b, s = _named_path(base), _named_path(sft)
    if b.parent == s.parent and b.parent.name.strip(". ") and b.is_dir() and s.is_dir():
        label = b.parent.name
    else:
        label = f"{_name(b, 'base')} vs {_name(s, 'sft')}"
    if label in PAIRS or label.removesuffix("-quick") in PAIRS:
        label += " (folders)"
    return label


def pair_label(pair: Any) -> str:
    """A short label of a loaded pair (or spec) for tables: its registry name, or :func:`folder_label`."""
    spec = getattr(pair, "spec", pair)
    if spec.family != "custom":
        return spec.name
    return folder_label(spec.base, spec.sft)


def resolve_toy(spec: PairSpec, progress: bool = True) -> PairSpec:
    """A toy pair's spec with ``base``/``sft`` pointing at its build folders (built now if missing)."""
    if spec.source != "toy" or spec.toy_variant is None:
        raise ValueError(f"pair {spec.name!r} is not a toy pair")
    if spec.toy_sft_steps is not None or spec.toy_sft_seed:
        out = Path(toy.ladder_rung(spec.toy_sft_steps, spec.toy_sft_seed or 0, variant=spec.toy_variant,
                                   progress=progress))
    else:
        out = Path(toy.build(variant=spec.toy_variant, progress=progress))
    return dataclasses.replace(spec, base=str(out / "base"), sft=str(out / "sft"))


def load_pair(
    name: str | None = None,
    *,
    base: str | None = None,
    sft: str | None = None,
    dtype: torch.dtype | str | None = None,
    device: str | torch.device | None = None,
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, str] | None = None,
    revision: str | None = None,
    base_revision: str | None = None,
    sft_revision: str | None = None,
    trust_remote_code: bool = False,
    offload_folder: str | None = None,
    sequential: bool = False,
    remote: bool = False,
    probe_texts: tuple[str, ...] = PROBE_TEXTS,
    progress: bool = True,
) -> ModelPair:
    """Load and validate a Base/SFT pair, wrapped for nnsight tracing.

    Either give a registry ``name`` (see :data:`PAIRS`) or both ``base`` and ``sft`` (Hub ids or
    local folders written by ``save_pretrained``). Validation happens before any weights are
    loaded: configs must agree on the number of layers and the hidden size, and the tokenizers
    must give identical token ids on ``probe_texts``.

    Args:
        name: Registry key, e.g. ``"olmo2-1b"`` or ``"toy"`` (the toy pair is built if missing).
        base: Base model id or folder (instead of ``name``).
        sft: SFT model id or folder (instead of ``name``).
        dtype: Model dtype; default bf16 on CUDA, fp32 on CPU.
        device: Device for both models; default CUDA when available. Ignored with ``device_map``.
        device_map: Passed to ``from_pretrained`` (e.g. ``"auto"`` to spread over several GPUs and
            offload to CPU/disk when the model does not fit).
        max_memory: Per-device memory caps for ``device_map="auto"``, e.g. ``{0: "70GiB", "cpu": "200GiB"}``.
        offload_folder: Disk folder for weights that fit neither GPU nor CPU memory (``device_map="auto"``).
        revision: Hub revision for both models (overridden by ``base_revision``/``sft_revision``).
        base_revision: Hub revision of the Base model.
        sft_revision: Hub revision of the SFT model.
        trust_remote_code: Allow model code from the Hub; off unless asked.
        sequential: Load each model only when first used; analyses that need both (e.g.
            :func:`mbt.analyze`) run Base, keep its small per-layer results, release it and then
            load SFT, so peak memory is one model plus activations instead of two.
        remote: Do not load weights: wrap both Hub models for remote execution on NDIF (nnsight's
            hosted models; needs network, an nnsight API key and a model that NDIF serves). Every
            trace of the pair then runs remotely and only the requested layers come back.
        probe_texts: Texts on which the tokenizers must agree.
        progress: Show progress bars (e.g. while building the toy pair).

    Returns:
        The validated :class:`ModelPair`.

    Raises:
        ValueError: Unknown pair name, or neither/both of ``name`` and ``base``/``sft`` given.
        PairMismatchError: The pair differs in depth, width or tokenization.
        RuntimeError: A model could not be found locally and the Hub is unreachable.
    """
    if name is not None and (base is not None or sft is not None):
        raise ValueError("give either a pair name or base= and sft=, not both")
    if name is None:
        if base is None or sft is None:
            raise ValueError(
                f"give a pair name (one of {', '.join(sorted(PAIRS))}) or both base= and sft="
            )
        spec = PairSpec(name=f"{Path(base).name}_vs_{Path(sft).name}", base=base, sft=sft, family="custom")
    else:
        spec = get_pair(name)
        if spec.source == "toy":
            spec = resolve_toy(spec, progress)
    spec = dataclasses.replace(
        spec,
        base_revision=base_revision or revision or spec.base_revision,
        sft_revision=sft_revision or revision or spec.sft_revision,
    )

    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    common = {"trust_remote_code": trust_remote_code}
    configs, tokenizers = {}, {}
    for role, ident, rev in (("base", spec.base, spec.base_revision), ("sft", spec.sft, spec.sft_revision)):
        try:
            configs[role] = AutoConfig.from_pretrained(ident, revision=rev, **common)
        except (OSError, ValueError) as exc:
            raise _hub_error(f"{role} config", ident, exc) from exc
    check_configs(configs["base"], configs["sft"])
    for role, ident, rev in (("base", spec.base, spec.base_revision), ("sft", spec.sft, spec.sft_revision)):
        try:
            tokenizers[role] = AutoTokenizer.from_pretrained(ident, revision=rev, **common)
        except (OSError, ValueError) as exc:
            raise _hub_error(f"{role} tokenizer", ident, exc) from exc
    check_tokenizers(tokenizers["base"], tokenizers["sft"], probe_texts)
    tokenizer = tokenizers["base"]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token

    torch_device = _default_device(device)
    torch_dtype = _default_dtype(dtype, torch_device, device_map)
    load_kwargs: dict[str, Any] = {"dtype": torch_dtype, **common}
    if device_map is not None:
        load_kwargs["device_map"] = device_map
        if max_memory is not None:
            load_kwargs["max_memory"] = max_memory
        if offload_folder is not None:
            load_kwargs["offload_folder"] = offload_folder

    def loader(role: str, ident: str, rev: str | None) -> Callable[[], Any]:
        def load() -> Any:
            if remote:
                return trace.remote_model(ident, revision=rev, tokenizer=tokenizer)
            try:
                with hf_progress_bars(progress):
                    model = AutoModelForCausalLM.from_pretrained(ident, revision=rev, **load_kwargs)
            except Exception as exc:  # a damaged file, a refused pickle, a full disk: one message naming the file
                if is_load_failure(exc):
                    raise load_failure(f"{role} weights", ident, exc) from exc
                if isinstance(exc, OSError | ValueError):
                    raise _hub_error(f"{role} weights", ident, exc) from exc
                raise
            if device_map is None:
                model = model.to(torch_device)
            return _wrap(model.eval(), tokenizer)

        return load

    loaders = {
        "base": loader("base", spec.base, spec.base_revision),
        "sft": loader("sft", spec.sft, spec.sft_revision),
    }
    dims = _config_dims(configs["base"])
    common_args = (tokenizer, spec, int(dims["layers"]), int(dims["hidden size"]))
    if sequential:
        return ModelPair(None, None, *common_args, loaders=loaders, dtype=torch_dtype, remote=remote)
    return ModelPair(loaders["base"](), loaders["sft"](), *common_args, dtype=torch_dtype, remote=remote)


def _wrap(model: Any, tokenizer: Any) -> Any:
    return trace.wrap(model, tokenizer)
