r"""The chapter notebooks: the one list of them, where the book root is, how a chapter is read, its parameters."""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mbt.book.parameters import check_together, coerce_parameter

__all__ = [
    "ACROSS",
    "BESIDE_THE_LADDER",
    "CHAPTERS",
    "Chapter",
    "LADDER_CHAPTERS",
    "TITLES",
    "TOC",
    "check_parameters",
    "find_root",
    "parameter_defaults",
    "parameter_types",
    "read_notebook",
]


@dataclass(frozen=True)
class Chapter:
    """One chapter notebook of the book (``notebooks/<name>.py``).

    Attributes:
        name: ``NN_topic``: the notebook's file name and the key every record, stamp and table uses.
        title: The title in tables and links, e.g. ``"1 · Divergence"`` (the notebook's own heading starts
            with it).
        paper: The part of the paper it reproduces, e.g. ``"§4.2, Fig. 1"`` (``"—"`` for our own chapters).
        shows: What it shows, in a few words (the notebooks' README table).
        ladder: Run for every rung of the SFT-intensity ladder before the cross-pair chapter compares them.
        beside_ladder: For the toy pair, run in the same pool as the ladder's rungs (one thread each).
        across: Compares several pairs from their stored results (it loads no pair itself).
    """

    name: str
    title: str
    paper: str
    shows: str
    ladder: bool = False
    beside_ladder: bool = False
    across: bool = False


TOC: tuple[Chapter, ...] = (
    Chapter("01_divergence", "1 · Divergence", "§4.2, Fig. 1",
            "Base-vs-SFT CKA, cosine similarity, mean shift per layer; robustness to the sample",
            ladder=True, beside_ladder=True),
    Chapter("02_convergence", "2 · Convergence", "§4.2, Fig. 2",
            "each model's entropies, effective rank, condition number, spectral norm, curvature, sparsity",
            ladder=True, beside_ladder=True),
    Chapter("03_probing", "3 · Probing", "§4.3, Fig. 3",
            "logit lens per layer, with the authors' doubled final norm at the last layer", ladder=True,
            beside_ladder=True),
    Chapter("04_weights", "4 · Weight change", "§4.3, Figs. 4–5",
            "weight change per block (checkpoint diff and own fine-tune); correlations raw and depth-controlled",
            ladder=True, beside_ladder=True),
    Chapter("05_swapping", "5 · Swapping", "§4.3, Fig. 6",
            "SFT↔Base segment swaps, both heads, placebo, paired intervals", beside_ladder=True),
    Chapter("06_midblock_lora", "6 · Mid-Block Efficient Tuning", "§4.4, Fig. 7, App. A–B",
            "segment LoRA sweep (masks × seeds), accuracy, answer NLL, retention"),
    Chapter("07_beyond", "7 · Beyond the paper", "future work",
            "the training-free block selector against the sweep; `paper` vs `standard` conventions"),
    Chapter("08_across_pairs", "8 · Across pairs: when does the pattern appear?", "—",
            "the SFT-intensity ladder (or any pairs with stored results) on one relative-depth axis", across=True),
    Chapter("09_what_sft_writes", "9 · What SFT writes, and whether the depth profile is intrinsic",
            "§3.2; follow-up work",
            "activation difference lens, convergence gap and grafts, per-token KL, the equal-step control"),
    Chapter("10_knowledge_or_format", "10 · Knowledge or format", "—",
            "own format, arithmetic alone and Q/A format along the SFT ladder; which swapped segment and LoRA mask "
            "moves the format, which the knowledge", beside_ladder=True),
)
"""The book's chapters, in execution and reading order: the one list that ``_toc.yml``, ``notebooks/README.md``,
the build, the batch runner and the collected "Paper vs ours" table follow (``tests/book/test_chapters.py``
checks them against it). To add a chapter, see CONTRIBUTING.md, "Add a chapter"."""

CHAPTERS: tuple[str, ...] = tuple(c.name for c in TOC)
"""The chapters' names, in order."""

TITLES: dict[str, str] = {c.name: c.title for c in TOC}
"""Each chapter's title by name."""

ACROSS: str = next(c.name for c in TOC if c.across)
"""The cross-pair chapter: it compares the pairs in its ``pairs`` parameter (default: the SFT ladder)."""

LADDER_CHAPTERS: tuple[str, ...] = tuple(c.name for c in TOC if c.ladder)
"""The chapters run for the other pairs the cross-pair chapter compares (LoRA is too costly for every rung)."""

BESIDE_THE_LADDER: tuple[str, ...] = tuple(c.name for c in TOC if c.beside_ladder)
"""The toy book's own chapters that run side by side with the ladder's rungs, one thread each, before the
LoRA chapters (which spread their own runs over the CPUs). Running them in the same pool as the rungs fills
the CPU that the last rung would otherwise leave idle."""


def find_root(start: str | Path | None = None) -> Path:
    """The book root: ``start`` if given, else the working directory, which must hold ``_config.yml``.

    There is no fallback to the folder ``mbt`` happens to be installed from: a build (and its staged
    notebooks and HTML) should land in the checkout the user is in, never silently in another one.

    Args:
        start: The folder given with ``--root`` (checked by :func:`build`), or ``None``.

    Raises:
        FileNotFoundError: ``start`` is ``None`` and the working directory has no ``_config.yml``.
    """
    if start is not None:
        return Path(start).resolve()
    cwd = Path.cwd()
    if not (cwd / "_config.yml").exists():
        raise FileNotFoundError(f"{cwd} is not the book's root (it has no _config.yml); run from the repository "
                                "root or pass --root")
    return cwd


def parameter_types(notebook: Any) -> dict[str, str]:
    """``{name: annotation}`` of a notebook's ``parameters`` cell (``pair: str = "toy"`` gives ``"str"``)."""
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            return {node.target.id: ast.unparse(node.annotation) for node in ast.parse(cell.source).body
                    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)}
    return {}


def parameter_defaults(notebook: Any) -> dict[str, Any]:
    """``{name: default}`` of a notebook's ``parameters`` cell, for values written as Python literals.

    A default that is not a literal (an expression) is left out; so is everything when the notebook has no
    ``parameters`` cell.
    """
    for cell in notebook.cells:
        if cell.cell_type == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            out: dict[str, Any] = {}
            for node in ast.parse(cell.source).body:
                target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else (
                    node.target if isinstance(node, ast.AnnAssign) else None)
                if isinstance(target, ast.Name) and node.value is not None:
                    try:
                        out[target.id] = ast.literal_eval(node.value)
                    except (ValueError, SyntaxError, TypeError):
                        continue
            return out
    return {}


def check_parameters(parameters: Mapping[str, Any], declared: Mapping[str, Mapping[str, str]],
                     defaults: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
    """Parse ``--param`` values once, with their types, before any work; refuse what no chosen chapter takes.

    Each value is converted by :func:`mbt.book.parameters.coerce_parameter` (``"false"`` → ``False``,
    ``"toy-math"`` → ``["toy-math"]`` for a list, ``2.7`` refused for a whole number, ranges such as
    ``n_pooled ≥ 2``), then each chapter's values together (its defaults and these) must satisfy
    :func:`mbt.book.parameters.check_together`.

    Args:
        parameters: The extra parameters, ``{name: value}``.
        declared: ``{chapter: {name: annotation}}`` (:func:`parameter_types` of each chosen chapter).
        defaults: ``{chapter: {name: default}}`` (:func:`parameter_defaults`), for the rules between parameters.

    Returns:
        The parameters, converted.

    Raises:
        ValueError: Naming the parameter, the chapters that declare it (or every valid name), the value and
            what is expected.
    """
    valid = sorted({name for types in declared.values() for name in types})
    out: dict[str, Any] = {}
    for name, value in parameters.items():
        where = {chapter: types[name] for chapter, types in declared.items() if name in types}
        if not where:
            raise ValueError(f"no chosen chapter has a parameter {name!r}; valid names: {', '.join(valid)}")
        for chapter, annotation in where.items():
            try:
                out[name] = coerce_parameter(name, value, annotation)
            except ValueError as exc:
                raise ValueError(f"{exc} (chapter {chapter} declares {name}: {annotation})") from None
    for chapter, types in declared.items():
        mine = {k: v for k, v in out.items() if k in types}
        check_together({**(defaults or {}).get(chapter, {}), **mine}, given=mine)
    return out


def read_notebook(path: str | Path) -> Any:
    """Read a chapter from its jupytext source (``.py``), the source of truth, as an nbformat notebook."""
    import jupytext

    return jupytext.read(Path(path))
