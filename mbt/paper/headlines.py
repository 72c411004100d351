r"""The paper's headline numbers as data: what it claims, where, for which model, and which chapter checks it.

:data:`HEADLINES` lists every headline number (or qualitative claim) of the paper with the chapter of the
book that computes our counterpart (a name of :data:`mbt.book.chapters.TOC`) and how. The computation itself
is the chapter's findings module (:mod:`mbt.paper.findings`); a test checks that every headline is produced
by one of them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

__all__ = ["BY_ID", "HEADLINES", "RULE_OF", "Headline", "chapter_of"]

@dataclass(frozen=True)
class Headline:
    """One headline number (or claim) of the paper.

    Attributes:
        id: Stable key, e.g. ``"cka_final"``.
        chapter: Chapter notebook that computes our counterpart (a name in :data:`mbt.book.chapters.CHAPTERS`).
        claim: The claim, in the paper's terms.
        model: The paper's model (and dataset) for this number.
        paper: The paper's value; ``[lost]`` where the text extraction removed it.
        where: Where the paper states it.
        how: How our counterpart is computed.
        rule: Key of the calibrated decision rule that decides it (the methods page's calibration table,
            ``scripts/calibrate_verdicts.py``); ``None`` for a number that is reported, not decided.
    """

    id: str
    chapter: str
    claim: str
    model: str
    paper: str
    where: str
    how: str
    rule: str | None = None


def _h(id: str, chapter: str, claim: str, model: str, paper: str, where: str, how: str) -> Headline:  # noqa: A002
    return Headline(id, chapter, claim, model, paper, where, how)


_F7 = "06_midblock_lora"
_F9 = "09_what_sft_writes"
_SIGS = {"eq1": "relative Eq. 1 weight change", "cka": "CKA(Base, SFT) drop", "shift": "relative mean shift",
         "lens": "logit-lens emergence"}
_K = "10_knowledge_or_format"
_LISTED: tuple[Headline, ...] = (
    # --- representation analysis (§4.2–§4.3)
    _h("middle_stable", "01_divergence", "middle layers (20–80 % depth) stable, final layers most sensitive",
       "all models", "qualitative", "abstract, §4.2",
       "1 − CKA(Base, SFT): mean over the last 20 % of depth − mean over 20–80 %, joint bootstrap over texts"),
    _h("similarity_decline", "01_divergence", "Base–SFT similarity declines progressively with depth",
       "all models", "qualitative", "abstract (finding 1)",
       "slope of CKA over relative depth (0, 0.8] below 0, joint bootstrap over texts (before the final drop)"),
    _h("cka_plateau", "01_divergence", "CKA plateau for layers 0–56 of 64", "OLMo2-32B", "above [lost]", "§4.2, Fig. 1",
       "CKA: mean over depth > 0.875 − mean over the plateau 0.2–0.875 (below 0); one row with middle_stable "
       "where the bands hold the same layers"),
    _h("cka_drop_start", "01_divergence", "sharp CKA drop from layer ~56 of 64 to the end", "OLMo2-32B",
       "depth ≈ 0.875", "§4.2, Fig. 1",
       "per-layer CKA decrease (l ≥ 2): last 20 % − middle 20–80 % above 0, joint bootstrap"),
    _h("cka_final", "01_divergence", "CKA at the final layer", "OLMo2-32B", "≈[lost]", "§4.2, Fig. 1",
       "CKA at layer L (and at L − 1, the authors' last extracted layer)"),
    _h("mean_shift_shallow", "01_divergence", "mean shift negligible in shallow layers", "OLMo2-32B", "< [lost]",
       "§4.2, Fig. 1", "relative mean shift ‖Δμ‖/‖μ_Base‖: log of depth ≤ 0.5 ÷ last 20 % (geometric means) "
       "below log 0.25, joint bootstrap"),
    _h("mean_shift_final", "01_divergence", "mean shift spikes in the final 5 layers", "OLMo2-32B", "over [lost]",
       "§4.2, Fig. 1", "relative mean shift: log of last 20 % ÷ middle (geometric means) above 0, joint bootstrap"),
    _h("cosine_agrees", "01_divergence", "cosine similarity agrees (lowest in the final layers)", "OLMo2-32B",
       "qualitative", "§4.2, Fig. 1", "cosine similarity: last 20 % − middle below 0, joint bootstrap over texts"),
    _h("seed_robust", "01_divergence", "robust to random seeds (t-test)", "OLMo2-32B", "p < [lost]", "§4.2",
       "the cosine band contrast replicated on two disjoint halves of the texts (holds if it holds on both)"),
    _h("synchronised", "02_convergence", "Base and SFT intrinsic curves synchronised", "all models", "qualitative",
       "§4.2, Fig. 2", "per metric and depth band, the largest Base–SFT gap within 10 % of the Base curve's range "
       "(log scale: within ×1.1), simultaneous joint-bootstrap interval; holds if close everywhere (Bonferroni)"),
    _h("three_stages", "02_convergence", "three stages: transition 0 → 1, plateau, final shift", "all models",
       "qualitative", "§4.2, Fig. 2",
       "per metric, the 0 → 1 step and the last-20 % steps above the middle steps (Bonferroni)"),
    _h("erank_peak", "02_convergence", "effective rank peaks in the middle", "OLMo2-13B", "peak [lost]", "§4.2, Fig. 2",
       "SFT effective rank: log of middle band ÷ early and ÷ last band (geometric means), both above 0, joint "
       "bootstrap (Bonferroni over 2)"),
    _h("cond_trough", "02_convergence", "condition number trough", "OLMo2-13B", "trough [lost]", "§4.2, Fig. 2",
       "SFT condition number: log of middle band ÷ early and ÷ last band (geometric means), both below 0, joint "
       "bootstrap (Bonferroni over 2)"),
    _h("erank_collapse", "02_convergence", "effective rank collapses in the last layers", "OLMo2-13B", "to [lost]",
       "§4.2, Fig. 2", "SFT effective rank: log of last 20 % ÷ middle (geometric means) below 0, joint bootstrap"),
    _h("spectral_norm_500", "02_convergence", "spectral norm exceeds 500 in the last layers", "OLMo2-13B (N = 200)",
       "> 500", "§4.2, Fig. 2", "SFT σ_max explodes: log of last 20 % ÷ middle (geometric means) above 0, joint "
       "bootstrap (500 itself grows like √N × the vector norm: not comparable)"),
    _h("probe_early", "03_probing", "logit-lens accuracy low for the first 50 of 64 layers", "OLMo2-32B, MMLU",
       "< [lost]", "§4.3, Fig. 3", "SFT top-1 accuracy: depth ≤ 50/64 ÷ later − 1 below −0.5"),
    _h("probe_rise", "03_probing", "accuracy rises from ≈0 to > 0.60 within the last 14 layers", "OLMo2-32B, MMLU",
       "> 0.60", "§4.3, Fig. 3", "SFT top-1 accuracy: later − depth ≤ 50/64 above 0"),
    _h("probe_final_dip", "03_probing", "final-layer accuracy drop", "OLMo2-32B, MMLU", "0.60 → 0.52", "§4.3, Fig. 3",
       "SFT accuracy L − (L − 1) below 0 with the final norm once; twice (the authors' code) shown"),
    _h("weight_j", "04_weights", "weight change J-shaped, small in early layers", "OLMo2-13B", "< [lost] early",
       "§4.3, Fig. 4", "relative Eq. 1 change per block, three parts on log values with blocks as units: first "
       "half below half the last band, last band above the middle, the final block the peak (all must hold)"),
    _h("weight_final", "04_weights", "weight change in the final layer", "OLMo2-13B", "> 0.10", "§4.3, Fig. 4",
       "own short fine-tune, mean ‖Δθ‖_F over the block's tensors (the authors' quantity), last block"),
    _h("corr_cosine", "04_weights", "weight change vs cosine similarity: strong negative", "OLMo2-13B", "r = [lost]",
       "§4.3, Fig. 5", "raw r over layers as the paper reports it, against smooth unrelated curves (below 0)"),
    _h("corr_spectral", "04_weights", "weight change vs spectral metrics: strong positive", "OLMo2-13B", "r = [lost]",
       "§4.3, Fig. 5", "raw r with log SFT σ_max over layers, against smooth unrelated curves (above 0)"),
    _h("corr_cosine_depth", "04_weights", "ours: weight change vs cosine beyond their shared depth trend",
       "any pair", "—", "—", "r of the residuals from a depth spline, surrogate null (below 0); inconclusive below "
       "16 layers"),
    _h("corr_spectral_depth", "04_weights", "ours: weight change vs log σ_max beyond their shared depth trend",
       "any pair", "—", "—", "r of the residuals from a depth spline, surrogate null (above 0); inconclusive below "
       "16 layers"),
    _h("swap_first", "05_swapping", "swap first 20 % (SFT → Base, Base head)", "OLMo2-13B, MMLU", "−0.001",
       "§4.3, Fig. 6", "token accuracy change, paired 95 % interval, segment 1 of 5"),
    _h("swap_middle", "05_swapping", "swap middle (SFT → Base, Base head)", "OLMo2-13B, MMLU", "+0.003",
       "§4.3, Fig. 6", "token accuracy change, paired 95 % interval, segment 3 of 5"),
    _h("swap_last", "05_swapping", "swap last 20 % (SFT → Base, Base head)", "OLMo2-13B, MMLU", "−0.002",
       "§4.3, Fig. 6", "token accuracy change, paired 95 % interval, segment 5 of 5"),
    # --- Mid-Block Efficient Tuning (Fig. 7, abstract, intro)
    _h("lora_1b_11111", _F7, "GSM8K, full-layer LoRA 11111", "OLMo2-1B", "0.19", "§4.4, Fig. 7",
       "our 11111 score (mean over seeds)"),
    _h("lora_1b_00001", _F7, "GSM8K, edge mask 00001 (below 11111)", "OLMo2-1B", "0.135", "§4.4, Fig. 7",
       "our 00001 score; mask − 11111 below 0, seeds × problems interval"),
    _h("lora_7b_01000", _F7, "GSM8K, best middle 01000 (above 11111)", "OLMo2-7B", "0.375", "§4.4, Fig. 7",
       "our 01000 score; mask − 11111 above 0, seeds × problems interval"),
    _h("lora_7b_11111", _F7, "GSM8K, full-layer LoRA 11111", "OLMo2-7B", "0.28", "§4.4, Fig. 7",
       "our 11111 score (mean over seeds)"),
    _h("lora_13b_01110", _F7, "GSM8K, best middle 01110 (above 11111)", "OLMo2-13B", "0.30", "§4.4, Fig. 7",
       "our 01110 score; mask − 11111 above 0, seeds × problems interval"),
    _h("lora_13b_11111", _F7, "GSM8K, full-layer LoRA 11111", "OLMo2-13B", "0.27", "§4.4, Fig. 7",
       "our 11111 score (mean over seeds)"),
    _h("lora_13b_10000", _F7, "GSM8K, edge mask 10000 (below 11111)", "OLMo2-13B", "0.22", "§4.4, Fig. 7",
       "our 10000 score; mask − 11111 below 0, seeds × problems interval"),
    _h("lora_32b_01100", _F7, "GSM8K, best middle 01100 (above 11111, fewer params)", "OLMo2-32B", "0.32",
       "§4.4, Fig. 7", "our 01100 score; mask − 11111 above 0, seeds × problems interval"),
    _h("lora_32b_11111", _F7, "GSM8K, full-layer LoRA 11111", "OLMo2-32B", "0.29", "§4.4, Fig. 7",
       "our 11111 score (mean over seeds)"),
    _h("lora_32b_10000", _F7, "GSM8K, edge mask 10000 (below the best middle mask 01100)", "OLMo2-32B", "0.25",
       "§4.4, Fig. 7", "our 10000 score; 10000 − 01100 below 0, seeds × problems interval"),
    _h("lora_mistral", _F7, "same tendency on Mistral-7B", "Mistral-7B", "no numbers", "§4.4",
       "not run on the toy pair (a Mistral-architecture pair is needed)"),
    _h("lora_gain", _F7, "Mid-Block beats standard LoRA", "OLMo2-7B", "+10.2 % (37.5 vs 28)", "abstract, §1",
       "one row with lora_7b_01000: the +10.2 % is 01000 (0.375) against 11111 (0.28)"),
    _h("lora_edge_gap", _F7, "best middle − worst edge exceeds 20 % of the score", "OLMo2 family", "> 20 %", "§4.4",
       "0.8 × middle − edge above 0 for every (middle, edge) pair, seeds × problems, Bonferroni; holds if any "
       "does"),
    *(_h(f"appA_3_{i + 1}", _F7, f"3 segments, segment {i + 1} tuned", "OLMo2-13B, ToxiGen", v, "App. A, Tab. 1",
         f"our mask {'1' if i == 0 else '0'}{'1' if i == 1 else '0'}{'1' if i == 2 else '0'} score")
      for i, v in enumerate(("0.4650", "0.4721", "0.4550"))),
    _h("appA_3_peak", _F7, "3 segments: the middle segment is best", "OLMo2-13B, ToxiGen", "segment 2",
       "App. A, Tab. 1", "010 above 100 and 001, seeds × problems"),
    *(_h(f"appA_10_{i + 1}", _F7, f"10 segments, segment {i + 1} tuned", "OLMo2-13B, ToxiGen", v, "App. A, Tab. 2",
         f"our 10-segment mask with only segment {i + 1} on")
      for i, v in enumerate(("0.4503", "0.4589", "0.4693", "0.4761", "0.4771", "0.4754", "0.4502", "0.4215",
                             "0.3966", "0.3821"))),
    _h("appA_10_peak", _F7, "10 segments: inverted U, peak at segment 5, worst at 10", "OLMo2-13B, ToxiGen",
       "peak 5, min 10", "App. A, Tab. 2", "segment 5 above 1 and 10, 10 below 1, seeds × problems"),
    *(_h(f"appB_{mask}_{bench}", _F7, f"retention, {mask}, {label}", "OLMo2-13B", v, "App. B, Tab. 4",
         f"our retention loss of {mask} on the {label} stand-in")
      for mask, vals in (("00000", ("14.53", "13.58")), ("11111", ("14.70", "13.76")), ("10000", ("14.61", "13.63")),
                         ("00001", ("14.65", "13.72")), ("00110", ("14.54", "13.60")))
      for bench, label, v in (("ifeval", "IFEval", vals[0]), ("mtbench", "MT-Bench", vals[1]))),
    _h("appB_middle_best", _F7, "middle segments (00110) retain the most", "OLMo2-13B", "00110 closest to Base",
       "App. B", "|log(ppl ÷ ppl of 00000)| of every other tuned mask above that of 00110, t over seeds"),
    # --- what SFT writes, and whether the depth profile is intrinsic (follow-up work, chapter 9)
    _h("adl_depth", _F9, "the final layers are the most sensitive: SFT's activation offset on unrelated text "
       "grows toward the output", "all models (the paper); offset read as Minder et al. 2025 read it", "qualitative",
       "§4.2; activation difference lens: Minder et al. 2025",
       "ρ_l = ‖δ_l‖ (noise floor removed) ÷ mean ‖h_Base,l‖ over the first k tokens of unrelated texts: "
       "last 20 % ÷ middle − 1 above 0, joint bootstrap over texts"),
    _h("adl_steering", _F9, "adding the mean activation difference to the Base moves it toward the fine-tuned model",
       "narrow fine-tunes of Gemma, Llama, Qwen (1B–32B)", "steered outputs resemble the fine-tuning data",
       "Minder et al. 2025 (activation difference lens, steering)",
       "KL(p_SFT ‖ p_Base) reduction by α·δ_l at the middle layer − by random directions of equal norm, "
       "paired bootstrap over held-out unrelated texts (above 0)"),
    _h("settles_later", _F9, "the fine-tuned model settles on its prediction later in depth", "six "
       "pretrained/instruction-tuned pairs", "later in all six", "convergence gap, arXiv 2605.07282",
       "KL(p_L ‖ p_l) to each model's own output, SFT − Base, mean over layers of depth (0.5, 1) below L, "
       "bootstrap over texts (above 0)"),
    _h("graft_late_mlp", _F9, "the fine-tuned model's late MLPs grafted into the Base raise its late KL",
       "six pretrained/instruction-tuned pairs", "+0.34 nats (random matched perturbation +0.003)",
       "convergence gap, arXiv 2605.07282", "Base with SFT's MLPs of depth (0.5, 1] − Base, late KL, paired "
       "bootstrap over texts (above 0); the matched random perturbation shown beside it"),
    _h("graft_late_mlp_reverse", _F9, "the Base's late MLPs grafted into the fine-tuned model lower its late KL",
       "six pretrained/instruction-tuned pairs", "−0.51 nats", "convergence gap, arXiv 2605.07282",
       "SFT with the Base's late MLPs − SFT, late KL, paired bootstrap over texts (below 0)"),
    _h("graft_mlp_over_attn", _F9, "late MLPs are a stronger lever on settling than late attention",
       "six pretrained/instruction-tuned pairs", "MLPs the strongest lever tested", "convergence gap, arXiv 2605.07282",
       "late-KL change of the SFT→Base MLP graft − of the attention graft, paired over texts (above 0)"),
    _h("template_tokens", _F9, "SFT changes the output distribution most where the format's template is predicted",
       "ours (per-token KL as diffing tools report it)", "—", "per-token KL: Minder et al. 2025 (diffing toolkit)",
       "per text, mean KL(p_SFT ‖ p_Base) on template targets − on content targets, paired bootstrap (above 0)"),
    *(_h(f"equal_step_{sig}", _F9, f"the late-layer profile of the {label} survives the equal-step control",
         "15 models, 125M–6.9B, four families (Billa 2026)", "persists in some conditions, collapses in others",
         "Billa 2026 (arXiv 2604.17177); the paper's §3.2 hypothesis",
         f"{label}: last 20 % vs middle of the equal-step runs, mean over SFT lengths, t interval over SFT seeds "
         "pooled within lengths (above 0)")
      for sig, label in _SIGS.items()),
    *(_h(f"equal_step_{sig}_flatter", _F9, f"equalising every block's update flattens the {label} profile "
         "(gradient proximity, §3.2)", "15 models, 125M–6.9B, four families (Billa 2026)",
         "slope kept in some architectures and objectives, lost in others", "paper §3.2; Billa 2026",
         f"{label} profile, equal-step − standard, paired by SFT length and seed, t interval pooled within lengths "
         "(below 0)")
      for sig, label in _SIGS.items()),
    # --- knowledge or format (ours; the paper's reading of its results, §1, §2.2, §5)
    _h("sft_format_not_knowledge", _K, "ours: SFT teaches the task's format more than the knowledge", "—",
       "a 'surface-level' steer toward formats, not new knowledge (the view it cites)", "§1, §2.2",
       "per problem, Q/A-format exact-match gain − arithmetic-alone gain (SFT − Base), bootstrap over problems, "
       "above 0"),
    _h("format_late", _K, "ours: the Q/A format lives in the last segment", "—",
       "final layers are the locus of instruction adherence; task knowledge is encoded late", "§2.2, §4.3",
       "Q/A exact-match change when one segment is swapped: the last vs each other, SFT→Base and Base→SFT, "
       "paired over problems, Bonferroni"),
    _h("own_format_forgotten", _K, "ours: SFT forgets the Base's own format", "—",
       "the top layers overwrite pre-existing features (catastrophic forgetting)", "§1, §5",
       "exact match in the Base's own format, SFT − Base, bootstrap over problems, below 0"),
)

_LORA_MASKS = ("lora_1b_00001", "lora_7b_01000", "lora_gain", "lora_13b_01110", "lora_13b_10000", "lora_32b_01100",
               "lora_32b_10000", "lora_edge_gap", "appA_3_peak", "appA_10_peak")
RULE_OF: dict[str, str] = {
    **dict.fromkeys(("middle_stable", "cka_plateau", "cka_drop_start", "cosine_agrees", "seed_robust",
                     "three_stages"), "band_replicates"),
    **dict.fromkeys(("mean_shift_shallow", "mean_shift_final", "erank_collapse", "spectral_norm_500"), "log_band"),
    "similarity_decline": "depth_trend",
    "synchronised": "closeness",
    "erank_peak": "middle_extremum",
    "cond_trough": "middle_extremum",
    **dict.fromkeys(("probe_early", "probe_rise", "probe_final_dip"), "layer_cis"),
    "weight_j": "weight_j",
    "corr_cosine": "raw_correlation",
    "corr_spectral": "raw_correlation",
    "corr_cosine_depth": "spline_correlation",
    "corr_spectral_depth": "spline_correlation",
    **dict.fromkeys(("swap_first", "swap_middle", "swap_last"), "paired_bootstrap"),
    **dict.fromkeys(_LORA_MASKS, "lora"),
    "appB_middle_best": "seed_t",
    "adl_depth": "band_replicates",
    **dict.fromkeys(("adl_steering", "settles_later", "graft_late_mlp", "graft_late_mlp_reverse",
                     "graft_mlp_over_attn", "template_tokens"), "paired_bootstrap"),
    **{f"equal_step_{sig}": "stratified_t" for sig in _SIGS},
    **{f"equal_step_{sig}_flatter": "stratified_t" for sig in _SIGS},
    **dict.fromkeys(("sft_format_not_knowledge", "format_late", "own_format_forgotten"), "paired_bootstrap"),
}
"""The calibrated rule (a key of ``scripts/calibrate_verdicts.py``'s table) that decides each judged claim."""

HEADLINES: tuple[Headline, ...] = tuple(replace(h, rule=RULE_OF.get(h.id)) for h in _LISTED)
"""Every headline number of the paper, by section (representation analysis first, then Mid-Block tuning)."""

BY_ID: dict[str, Headline] = {h.id: h for h in HEADLINES}
""":data:`HEADLINES` by id."""


def chapter_of(headline_id: str) -> str:
    """The chapter that computes a headline (``KeyError`` for an unknown id)."""
    return BY_ID[headline_id].chapter
