"""mbt.book: the headline registry, the findings (pure functions of library tables), records and the build's parts."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mbt import book, cli, pairs, paper, segments, select
from mbt.book import builder as book_build
from mbt.correlate import layer_correlations

ROOT = Path(__file__).resolve().parents[1]
L = 10


def _frame(cka, shift=None, cos=None, *, base=None, sft=None) -> pd.DataFrame:
    """A tidy analyze-like table of one dataset from per-layer lists."""
    rows = []
    for layer in range(L + 1):
        d = layer / L
        rows.append(dict(model="pair", layer=layer, depth=d, metric="cka", value=cka[layer], ci_low=np.nan,
                         ci_high=np.nan, n=100, aggregation="alignment"))
        if shift is not None:
            rows.append(dict(model="pair", layer=layer, depth=d, metric="mean_shift", value=shift[layer],
                             ci_low=np.nan, ci_high=np.nan, n=100, aggregation="alignment"))
        if cos is not None:
            rows.append(dict(model="pair", layer=layer, depth=d, metric="cosine_similarity", value=cos[layer],
                             ci_low=cos[layer] - 0.01, ci_high=cos[layer] + 0.01, n=100, aggregation="alignment"))
        for model, curves in (("base", base or {}), ("sft", sft or {})):
            for metric, values in curves.items():
                rows.append(dict(model=model, layer=layer, depth=d, metric=metric, value=values[layer],
                                 ci_low=np.nan, ci_high=np.nan, n=100, aggregation="dataset"))
    return pd.DataFrame(rows)


PAPER_LIKE_CKA = [1.0, 0.97, 0.96, 0.96, 0.955, 0.96, 0.955, 0.95, 0.95, 0.85, 0.6]
EARLY_DROP_CKA = [1.0, 0.7, 0.6, 0.62, 0.63, 0.64, 0.66, 0.68, 0.7, 0.72, 0.75]


def _by_id(findings):
    return {f.id: f for f in findings}


# --------------------------------------------------------------------------------------------
# registry


def test_headlines_cover_every_number_of_section_11():
    ids = [h.id for h in paper.HEADLINES]
    assert len(ids) == len(set(ids))
    assert all(h.chapter in book.CHAPTERS for h in paper.HEADLINES)
    papers = " ".join(h.paper for h in paper.HEADLINES)
    # representation analysis, probing, weights, swapping
    for number in ("> 500", "0.60 → 0.52", "> 0.10", "−0.001", "+0.003", "−0.002", "> 0.60"):
        assert number in papers, number
    # Fig. 7, abstract/intro, Appendix A (3 and 10 segments) and Appendix B (5 configs x 2 benchmarks)
    for number in ("0.19", "0.135", "0.375", "0.28", "0.30", "0.27", "0.22", "0.32", "0.29", "0.25",
                   "+10.2 %", "0.4650", "0.4721", "0.4550", "0.4503", "0.4589", "0.4693", "0.4761", "0.4771",
                   "0.4754", "0.4502", "0.4215", "0.3966", "0.3821", "14.53", "13.58", "14.70", "13.76", "14.61",
                   "13.63", "14.65", "13.72", "14.54", "13.60"):
        assert re.search(rf"(^|[^\d]){re.escape(number)}($|[^\d])", papers), number
    assert paper.chapter_of("cka_final") == "01_divergence"
    with pytest.raises(ValueError, match="unknown headline"):
        paper.Finding("no_such_claim", "1")


# --------------------------------------------------------------------------------------------
# findings


def test_divergence_findings_agree_on_a_paper_like_curve():
    shift = [0.0, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.2, 0.3, 1.0, 5.0]
    cos = [1.0, 0.99, 0.99, 0.99, 0.99, 0.99, 0.99, 0.98, 0.97, 0.9, 0.7]
    found = _by_id(paper.divergence_findings(_frame(PAPER_LIKE_CKA, shift, cos),
                                            halves=(_frame(PAPER_LIKE_CKA), _frame(PAPER_LIKE_CKA))))
    for hid in ("middle_stable", "cka_plateau", "cka_drop_start", "mean_shift_shallow", "mean_shift_final",
                "cosine_agrees", "seed_robust"):
        assert found[hid].agrees is True, (hid, found[hid])
    assert found["cka_final"].agrees is None
    assert found["cka_final"].value == pytest.approx(0.6)
    assert "layer 10" in found["cka_final"].ours and "0.850 at 9" in found["cka_final"].ours


def test_divergence_findings_disagree_when_the_change_is_early():
    shift = [0.0, 5.0, 5.0, 5.0, 4.0, 4.0, 3.0, 3.0, 3.0, 3.0, 3.0]
    cos = [1.0, 0.5, 0.6, 0.7, 0.8, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9]
    noisy = [c + 0.2 for c in EARLY_DROP_CKA]
    found = _by_id(paper.divergence_findings(_frame(EARLY_DROP_CKA, shift, cos),
                                            halves=(_frame(EARLY_DROP_CKA), _frame(noisy))))
    for hid in ("middle_stable", "cka_plateau", "mean_shift_shallow", "mean_shift_final", "cosine_agrees",
                "seed_robust"):
        assert found[hid].agrees is False, (hid, found[hid])
    assert "depth 0.20" in found["middle_stable"].ours


def test_convergence_findings():
    layers = np.arange(L + 1)
    erank = [50, 20, 25, 30, 33, 35, 33, 30, 25, 10, 3]
    base = {"effective_rank": erank, "condition_number": [1e3, 50, 40, 30, 20, 25, 30, 40, 60, 200, 900],
            "spectral_norm": list(1 + layers ** 2), "curvature": [2.0, 1.5, 1.48, 1.47, 1.46, 1.46, 1.45, 1.45,
                                                                 1.44, 1.3, 1.1]}
    sft = {k: [v * 1.01 for v in vals] for k, vals in base.items()}
    found = _by_id(paper.convergence_findings(_frame(PAPER_LIKE_CKA, base=base, sft=sft)))
    assert found["synchronised"].agrees is True and found["synchronised"].value == pytest.approx(1.0)
    assert found["erank_peak"].agrees is True and "layer 5" in found["erank_peak"].ours
    assert found["erank_collapse"].agrees is True
    assert found["cond_trough"].agrees is None and "layer 4" in found["cond_trough"].ours
    assert found["spectral_norm_500"].agrees is True and "N = 100" in found["spectral_norm_500"].ours
    assert found["three_stages"].agrees is True
    # anti-synchronised curves are caught
    anti = {k: list(reversed(v)) for k, v in base.items()}
    found = _by_id(paper.convergence_findings(_frame(PAPER_LIKE_CKA, base=base, sft=anti)))
    assert found["synchronised"].agrees is False


def _lens(final_once: float, final_twice: float, penultimate: float = 0.6) -> pd.DataFrame:
    rows = []
    for paper_ in (False, True):
        for layer in range(1, L + 1):
            acc = 0.0 if layer < 8 else {8: 0.3, 9: penultimate, 10: final_twice if paper_ else final_once}[layer]
            rows.append(dict(model="sft", paper=paper_, layer=layer, depth=layer / L, metric="top1_acc", value=acc,
                             pooled=acc))
    return pd.DataFrame(rows)


def test_probing_findings_separate_the_double_norm_dip():
    found = _by_id(paper.probing_findings(_lens(final_once=0.62, final_twice=0.52)))
    assert found["probe_early"].agrees is True and found["probe_rise"].agrees is True
    dip = found["probe_final_dip"]
    assert dip.agrees is False and "only with the final norm applied twice" in dip.note
    assert "0.600 → 0.620" in dip.ours and "0.520" in dip.ours
    found = _by_id(paper.probing_findings(_lens(final_once=0.5, final_twice=0.4)))
    assert found["probe_final_dip"].agrees is True


def test_weights_and_correlation_findings():
    j = pd.Series([0.5, 0.4, 0.4, 0.4, 0.45, 0.45, 0.5, 0.6, 0.8, 1.2], index=range(1, L + 1))
    found = _by_id(paper.weights_findings(j, j / 100))
    assert found["weight_j"].agrees is True and found["weight_final"].agrees is None
    flat = pd.Series([1.0] * L, index=range(1, L + 1)).add(np.linspace(0, 0.01, L)[::-1])
    assert _by_id(paper.weights_findings(flat))["weight_j"].agrees is False

    rng = np.random.default_rng(0)
    depth = np.arange(1, L + 1, dtype=float)
    x = pd.Series(depth + rng.normal(0, 0.1, L), index=range(1, L + 1))
    metrics = pd.DataFrame({"cosine_similarity": -depth + rng.normal(0, 0.1, L),
                            "spectral_norm": depth ** 2 + rng.normal(0, 0.1, L)}, index=range(1, L + 1))
    found = _by_id(paper.correlation_findings(layer_correlations(x, metrics)))
    assert found["corr_cosine"].agrees is True and found["corr_spectral"].agrees is True
    assert found["corr_cosine"].note == "does not survive the depth control", "pure depth trends are not partial"


def _swap(diffs, width=0.004):
    rows = [dict(kind="swap", receiver="base", head="receiver", segment=i, diff=d, diff_ci_low=d - width / 2,
                 diff_ci_high=d + width / 2, diff_ci_width=width, n=50) for i, d in enumerate(diffs)]
    rows.append(dict(kind="swap", receiver="base", head="donor", segment=0, diff=1.0, diff_ci_low=0.9,
                     diff_ci_high=1.1, diff_ci_width=0.2, n=50))
    return pd.DataFrame(rows)


def test_swap_findings_sign_and_resolution():
    found = _by_id(paper.swap_findings(_swap([-0.01, 0.0, 0.02, 0.0, -0.03], width=0.001)))
    assert found["swap_first"].agrees is True and found["swap_middle"].agrees is True
    assert found["swap_last"].agrees is True
    assert "resolves" in found["swap_first"].note
    found = _by_id(paper.swap_findings(_swap([0.01, 0.0, 0.0, 0.0, 0.0], width=0.05)))
    assert found["swap_first"].agrees is False and "wider than" in found["swap_first"].note
    assert found["swap_middle"].note == "no text's score changed at all"


def _sweep_table(scores: dict[str, float], seeds=(0, 1), retention=True) -> pd.DataFrame:
    rows = []
    for mask, score in scores.items():
        for s in seeds:
            row = dict(mask=mask, seed=s, accuracy=score + 0.001 * s, accuracy_ci_low=score - 0.05,
                       accuracy_ci_high=score + 0.05, answer_nll=1 - score)
            if retention:
                row.update(ppl_instruct=10 + abs(score - 0.3) * (mask != "00000"),
                           ppl_text=20 + score * (mask != "00000"))
            rows.append(row)
    return pd.DataFrame(rows)


def test_lora_findings_middle_beats_full_depth():
    scores = {"00000": 0.0, "11111": 0.28, "10000": 0.2, "01000": 0.37, "00100": 0.3, "00010": 0.29,
              "00001": 0.1, "01100": 0.33, "00110": 0.3, "01110": 0.31,
              "100": 0.4, "010": 0.5, "001": 0.3,
              **{m: v for m, v in zip(segments.single_segment_masks(10),
                                      (0.45, 0.46, 0.47, 0.48, 0.49, 0.48, 0.45, 0.42, 0.4, 0.38), strict=True)}}
    found = _by_id(paper.lora_findings(_sweep_table(scores)))
    assert found["lora_7b_11111"].agrees is None and "2 seeds" in found["lora_7b_11111"].ours
    for hid in ("lora_7b_01000", "lora_13b_01110", "lora_32b_01100", "lora_13b_10000", "lora_1b_00001",
                "lora_gain", "lora_edge_gap", "appA_3_peak", "appA_10_peak"):
        assert found[hid].agrees is True, (hid, found[hid])
    assert found["lora_gain"].value == pytest.approx(0.09)
    assert found["appA_3_2"].value == pytest.approx(0.5005)
    assert {f"appB_{m}_{b}" for m in ("00000", "11111", "10000", "00001", "00110")
            for b in ("ifeval", "mtbench")} <= set(found)
    assert found["appB_middle_best"].agrees is True
    # a sweep without the optional families still works
    small = _by_id(paper.lora_findings(_sweep_table({"00000": 0.0, "11111": 0.3, "01100": 0.2}, retention=False)))
    assert small["lora_32b_01100"].agrees is False and "appA_3_peak" not in small


def test_compare_conventions_and_sentence():
    standard = _frame(PAPER_LIKE_CKA, base={"effective_rank": [5] * (L + 1)}, sft={"effective_rank": [5] * (L + 1)})
    authors = _frame(EARLY_DROP_CKA, base={"effective_rank": [5] * (L + 1)}, sft={"effective_rank": [5] * (L + 1)})
    table = paper.compare_conventions({"standard": standard, "paper": authors})
    assert {"claim", "standard: ours", "paper: agrees", "same verdict"} <= set(table.columns)
    row = table[table["claim"] == paper.BY_ID["middle_stable"].claim].iloc[0]
    assert (row["standard: agrees"], row["paper: agrees"], row["same verdict"]) == ("yes", "no", "NO")
    sentence = paper.conventions_sentence(table)
    assert "change with the conventions" in sentence and paper.BY_ID["middle_stable"].claim in sentence
    same = paper.compare_conventions({"standard": standard, "paper": standard})
    assert "do not change any conclusion" in paper.conventions_sentence(same)


# --------------------------------------------------------------------------------------------
# records and rendering


def test_report_records_and_renders(tmp_path, monkeypatch):
    monkeypatch.setenv(paper.RECORDS_ENV, str(tmp_path / "rec"))
    findings = [paper.Finding("cka_final", "0.5", None, "lost"), paper.Finding("middle_stable", "x", True, "ok"),
                paper.Finding("swap_first", "y", False, "opposite sign")]
    out = paper.report(findings, pair="toy", settings={"n": 3})
    text = getattr(out, "data", out)
    assert text.startswith("| claim | paper (model) | ours | agrees? | why |")
    assert "1 of 2 comparable claims hold on `toy`" in text
    assert "Not reproduced: " + paper.BY_ID["swap_first"].claim + " — opposite sign" in text
    assert "1 more number is shown for scale only" in text
    stored = json.loads((tmp_path / "rec" / "01_divergence.json").read_text())
    assert set(stored["findings"]) == {"cka_final", "middle_stable"} and stored["pair"] == "toy"
    assert set(paper.read_records(tmp_path / "rec")) == {"cka_final", "middle_stable", "swap_first"}


def test_paper_vs_ours_table_lists_every_headline():
    md = paper.paper_vs_ours_markdown({"toy": {"cka_final": {"ours": "0.5", "agrees": None},
                                              "middle_stable": {"ours": "x", "agrees": True}},
                                      "olmo2-1b": {}})
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert len(lines) == 1 + len(paper.HEADLINES)
    assert "ours: `toy`" in lines[0] and "ours: `olmo2-1b`" in lines[0]
    stable = next(line for line in lines if paper.BY_ID["middle_stable"].claim in line)
    assert "x ✓" in stable and "not run" in stable
    assert "(../notebooks/01_divergence.ipynb)" in stable


def test_collect_records_current_pair_first(tmp_path, monkeypatch):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    root = paper.records_root()
    for slug, hid in (("toy", "cka_final"), ("olmo2-1b", "middle_stable"), ("toy-quick", "cka_plateau")):
        (root / slug / "records").mkdir(parents=True)
        (root / slug / "records" / "x.json").write_text(json.dumps({"findings": {hid: {"ours": "1", "agrees": None}}}))
    assert list(paper.collect_records("toy")) == ["toy", "olmo2-1b"]
    assert list(paper.collect_records("toy-quick")) == ["toy-quick", "olmo2-1b", "toy"]


def test_conventions_markdown_lists_every_field():
    from dataclasses import fields

    from mbt.metrics.conventions import Conventions

    md = paper.conventions_markdown()
    for f in fields(Conventions):
        if f.name != "name":
            assert f"| `{f.name}` |" in md
    assert "| `erank_power` | `1` | `2` **≠** |" in md
    assert ":func:" not in md and "``" not in md


# --------------------------------------------------------------------------------------------
# helpers and build plumbing


def test_sizes_datasets_and_masks(tmp_path):
    assert book.sizes(1000, 100, False) == (1000, 100)
    assert book.sizes(1000, 100, True) == (32, 8)
    from mbt.pairs import PAIRS

    assert book.default_datasets(PAIRS["toy"]) == ["toy-math", "toy-mc", "toy-text"]
    assert book.default_datasets(PAIRS["olmo2-7b"], "probing") == ["mmlu"]
    assert book.default_datasets(PAIRS["toy"], "swapping") == ["toy-math"]
    assert book.default_datasets(PAIRS["olmo2-7b"], "finetune") == ["gsm8k"]
    with pytest.raises(ValueError, match="purpose"):
        book.default_datasets(PAIRS["toy"], "other")
    assert segments.single_segment_masks(3) == ("100", "010", "001")
    assert segments.PAPER_MASKS[0] == "00000" and len(segments.PAPER_MASKS) == 10
    import mbt.tune

    assert tuple(segments.PAPER_MASKS) == tuple(mbt.tune.DEFAULT_MASKS)


def test_folder_label(tmp_path):
    (tmp_path / "toy-tiny-seed0-abc" / "base").mkdir(parents=True)
    (tmp_path / "toy-tiny-seed0-abc" / "sft").mkdir()
    build = tmp_path / "toy-tiny-seed0-abc"
    assert pairs.folder_label(str(build / "base"), str(build / "sft")) == "toy-tiny-seed0-abc"
    assert pairs.folder_label("/a/base-model", "/b/sft-model") == "base-model vs sft-model"
    hub = pairs.folder_label("allenai/OLMo-2-0425-1B", "allenai/OLMo-2-0425-1B-SFT")
    assert hub == "OLMo-2-0425-1B vs OLMo-2-0425-1B-SFT"


def test_metric_table_and_evidence_curves():
    frame = _frame(PAPER_LIKE_CKA, base={"effective_rank": [1.0] * (L + 1)}, sft={"effective_rank": [2.0] * (L + 1)})
    wide = book.metric_table(frame)
    assert set(wide.columns) == {"cka", "effective_rank"} and (wide["effective_rank"] == 2.0).all()
    evidence = pd.DataFrame({"block": range(L), "layer": range(1, L + 1), "cka": np.arange(L, dtype=float),
                             "score": np.ones(L), "selected": [False] * L})
    evidence.attrs["signals"] = ["cka"]
    tidy = select.evidence_curves(evidence)
    assert list(tidy.columns) == ["signal", "layer", "value"] and set(tidy["signal"]) == {"cka", "score"}


def _table(n: int, texts: list[str], progress: bool = True) -> pd.DataFrame:
    _CALLS.append((n, tuple(texts)))
    return pd.DataFrame({"n": [n], "chars": [sum(map(len, texts))]})


_CALLS: list = []


def test_cached_call_keys_on_the_call_itself(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MBT_CACHE", str(tmp_path))
    _CALLS.clear()
    texts = [f"text {i}" for i in range(12)]
    first = book.cached_call(_table, 1, texts)
    again = book.cached_call(_table, 1, texts, progress=False)  # progress is not part of the key
    assert len(_CALLS) == 1 and first.equals(again) and "mbt: cached" in capsys.readouterr().err
    book.cached_call(_table, 2, texts)  # another argument: computed again
    book.cached_call(_table, 1, texts[:-1] + ["text 11 changed"])  # other texts: computed again
    book.cached_call(_table, 1, ["text 0\0text 1", *texts[2:]])  # text boundaries matter
    assert len(_CALLS) == 4
    book.cached_call(_table, 1, texts, cache=False)
    assert len(_CALLS) == 5
    with pytest.raises(TypeError, match="cannot key"):
        book.cached_call(_table, object(), texts)


def test_chapters_6_and_7_share_one_sweep_object():
    """Both chapters build their sweep with book.lora_sweep from identically named and valued parameters."""
    shared = ("task", "masks", "seeds", "preset", "rank", "steps", "n_test", "threads", "quick")
    cells = {}
    for name in ("06_midblock_lora", "07_beyond"):
        nb = book_build.read_notebook(ROOT / "notebooks" / f"{name}.py")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        values = {}
        for node in ast.parse(cell.source).body:
            target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
            values[target.id] = ast.literal_eval(node.value)
        cells[name] = {k: values[k] for k in shared}
        source = "\n".join(c.source for c in nb.cells)
        assert "book.lora_sweep(P, task=task, masks=masks, seeds=seeds, preset=preset, rank=rank, steps=steps" in source
    assert cells["06_midblock_lora"] == cells["07_beyond"]
    from mbt.pairs import PAIRS

    a = book.lora_sweep(PAIRS["toy"], **{k: v for k, v in cells["06_midblock_lora"].items()})
    b = book.lora_sweep(PAIRS["toy"], **{**cells["07_beyond"], "steps": 7})
    assert a.task == "toy-math" and a.masks == segments.PAPER_MASKS and a != b and b.options["steps"] == 7
    quick = book.lora_sweep(PAIRS["toy"], quick=True)
    assert quick.masks == tuple(book.QUICK_SWEEP["masks"]) and len(quick.seeds) == 1 and quick.options["steps"] == 2


def test_parameter_names_and_staging(tmp_path):
    nb = book_build.read_notebook(ROOT / "notebooks" / "01_divergence.py")
    names = book.parameter_names(nb)
    for name in ("pair", "base", "sft", "quick", "datasets", "n_pooled", "n_token", "seed", "conventions"):
        assert name in names
    root = tmp_path / "root"
    (root / "book" / "_executed").mkdir(parents=True)
    (root / "book" / "_executed" / "stale.md").write_text("x")
    (root / "_config.yml").write_text("title: t\n")
    (root / "_toc.yml").write_text("root: book/intro\n")
    (root / "book" / "intro.md").write_text("# Intro\n")
    stage = root / "book" / "_executed"
    book_build.stage_sources(root, stage)
    assert (stage / "_config.yml").exists() and (stage / "book" / "intro.md").read_text() == "# Intro\n"
    assert not (stage / "book" / "_executed").exists(), "the stage is never copied into itself"
    mtime = (stage / "book" / "intro.md").stat().st_mtime_ns
    book_build.stage_sources(root, stage)
    assert (stage / "book" / "intro.md").stat().st_mtime_ns == mtime, "unchanged files are left alone"


def test_build_refuses_bad_arguments_before_doing_anything(tmp_path):
    with pytest.raises(ValueError, match="valid names"):
        book.build("olmo9", root=tmp_path)
    with pytest.raises(FileNotFoundError, match="has no _config.yml"):
        book.build("toy", root=tmp_path)
    with pytest.raises(ValueError, match="both --base and --sft"):
        book.build(base="x", root=tmp_path)
    (tmp_path / "_config.yml").write_text("title: t\n")
    with pytest.raises(ValueError, match="unknown chapters"):
        book.build("olmo2-1b", root=tmp_path, chapters=["99_nothing"], execute=False)


def test_cli_book_passes_flags_to_build(monkeypatch, capsys):
    seen = {}

    def fake_build(pair, **kwargs):
        seen.update(pair=pair, **kwargs)
        return book.BuildReport(pair=str(pair), stage=ROOT, html=None)

    monkeypatch.setattr(book, "build", fake_build)
    code = cli.main(["book", "--pair", "olmo2-1b", "--quick", "--only", "1,05_swapping", "--param", "n_pooled=200",
                     "--param", "seeds=[0, 1]", "--param", "task=toy-math", "--force", "--strict"])
    assert code == 0
    assert seen["pair"] == "olmo2-1b" and seen["quick"] and seen["force"] and seen["strict"]
    assert seen["chapters"] == ["01_divergence", "05_swapping"]
    assert seen["parameters"] == {"n_pooled": 200, "seeds": [0, 1], "task": "toy-math"}
    code = cli.main(["book", "--base", "b", "--sft", "s", "--no-execute", "--no-html"])
    assert code == 0 and seen["pair"] is None and seen["base"] == "b" and not seen["execute"] and not seen["html"]
    assert cli.main(["book", "--param", "novalue"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_papermill_reads_every_parameter_with_its_type(recwarn):
    """papermill's own parser (``--help-notebook``) must see every parameter, typed; '=' in a comment broke it."""
    from papermill.translators import PythonTranslator

    for name in book.CHAPTERS:
        nb = book_build.read_notebook(ROOT / "notebooks" / f"{name}.py")
        cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
        seen = {p.name: p.inferred_type_name for p in PythonTranslator.inspect(cell)}
        assert set(seen) == set(book.parameter_names(nb)), name
        assert all(t != "None" for t in seen.values()), (name, seen)
        assert seen == book_build.parameter_types(nb)


def test_check_parameters_refuses_unknown_names_and_wrong_types():
    declared = {"01_divergence": {"n_pooled": "int", "datasets": "list", "quick": "bool"},
                "03_probing": {"n_samples": "int"}}
    book_build.check_parameters({"n_pooled": 200, "datasets": ["toy-math"], "n_samples": 3}, declared)
    with pytest.raises(ValueError, match="no chosen chapter has a parameter 'nonexistent'.*n_pooled"):
        book_build.check_parameters({"nonexistent": 1}, declared)
    with pytest.raises(ValueError, match="'n_pooled' must be int.*got str 'abc'"):
        book_build.check_parameters({"n_pooled": "abc"}, declared)
    with pytest.raises(ValueError, match="must be int"):
        book_build.check_parameters({"n_pooled": True}, declared)
    with pytest.raises(ValueError, match="must be bool"):
        book_build.check_parameters({"quick": 1}, declared)


def test_build_refuses_bad_parameters_before_executing(tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(book_build, "_execute", lambda *a, **k: ran.append(a))
    monkeypatch.setattr(book_build.toy, "build", lambda *a, **k: ran.append("toy"))
    with pytest.raises(ValueError, match="valid names"):
        book.build("toy", parameters={"nonexistent": 1}, html=False)
    with pytest.raises(ValueError, match="must be int"):
        book.build("toy", parameters={"n_pooled": "abc"}, html=False)
    assert ran == []


def test_find_root_is_the_working_directory_or_refuses(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    assert book.find_root() == ROOT
    assert book.find_root(tmp_path) == tmp_path.resolve()  # --root is taken as given; build() checks it
    monkeypatch.chdir(tmp_path)  # no _config.yml here: never fall back to the checkout mbt was imported from
    with pytest.raises(FileNotFoundError, match="run from the repository root or pass --root"):
        book.find_root()
    (tmp_path / "_config.yml").write_text("title: t\n")
    assert book.find_root() == tmp_path


def test_cli_book_outside_a_checkout_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(book_build, "_execute", lambda *a, **k: pytest.fail("executed a chapter"))
    monkeypatch.setattr(book_build.toy, "build", lambda *a, **k: pytest.fail("built the toy pair"))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["book", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("mbt: error: ") and "pass --root" in err
    assert list(tmp_path.iterdir()) == []
