r"""Our counterpart of each headline: pure functions from the library's tables to :class:`Finding` rows.

One module per chapter (chapter notebook ``NN`` ↔ ``mbt.paper.findings.<topic>`` ↔
``tests/paper/findings/test_<topic>.py``); each declares its ``CHAPTER`` and produces findings only for
that chapter's headlines. The shared pieces (the :class:`Finding` row, compound rules, table access, band
contrasts) live in :mod:`mbt.paper.findings.common`.

Each ``*_findings`` function takes the table a chapter computed (an :func:`mbt.analyze` table, a logit-lens
table, weight-change series, a swap sweep, a LoRA sweep) and returns one :class:`Finding` per distinct
comparison (:data:`~mbt.paper.headlines.HEADLINES` ids it stands for). Every verdict comes from the verdict
engine (:mod:`mbt.paper.verdicts`): an effect with its interval at a stated level, the decision rule in
words and the minimum detectable effect (MDE), and one of three verdicts — **holds** (the interval lies on
the claimed side), **contradicted** (on the other side) or **inconclusive**. Never a sign or a raw mean.

Families (95 % level unless a Bonferroni correction is stated):

* shape claims over depth — :func:`~mbt.paper.verdicts.band_contrast` of the last 20 % of depth against the
  middle 20–80 % on scale-free quantities (relative mean shift, relative Eq. 1 weight change, CKA, cosine,
  ratios for positive quantities). The interval uses per-layer bootstrap intervals (``layer_cis``, valid
  for any correlation between layers, conservative) where the table has them, otherwise the layer values
  with an autocorrelation-corrected Welch interval (``layers``);
* two curves over layers — :func:`~mbt.paper.verdicts.curve_correlation` (cubic spline in depth removed,
  phase-surrogate null);
* swapping — the sweep's paired bootstrap interval over texts;
* LoRA masks — paired Student t intervals over seeds (:func:`~mbt.paper.verdicts.seed_contrast`);
  claims of several paper models that map to the same comparison are one row
  (:func:`~mbt.paper.verdicts.collapse`); "some middle mask beats 11111" tests every middle mask with a
  Bonferroni correction instead of picking the best one.

* knowledge or format (ours, chapter 10) — problems as units: paired bootstrap intervals of per-problem
  exact-match differences; "the format lives in the last segment" compares the last segment's swap with
  each other segment's, paired over problems, with a Bonferroni correction.

Compound claims ("peaks in the middle" = above both neighbours) hold when every part holds and are
contradicted when any part is contradicted, each part at the Bonferroni level ``1 − 0.05/k``.
"""

from __future__ import annotations

from mbt.paper.findings.common import ALPHA, LEVEL, Finding, interval_text
from mbt.paper.findings.convergence import convergence_findings
from mbt.paper.findings.diffing import diffing_findings, run_profiles, stratified_interval
from mbt.paper.findings.divergence import divergence_findings
from mbt.paper.findings.knowledge import knowledge_findings, mask_contrasts
from mbt.paper.findings.lora import RETENTION_COLUMNS, lora_findings, sweep_columns
from mbt.paper.findings.probing import probing_findings
from mbt.paper.findings.swapping import swap_findings
from mbt.paper.findings.weights import correlation_findings, weights_findings

__all__ = [
    "ALPHA",
    "LEVEL",
    "RETENTION_COLUMNS",
    "Finding",
    "convergence_findings",
    "correlation_findings",
    "diffing_findings",
    "divergence_findings",
    "interval_text",
    "knowledge_findings",
    "lora_findings",
    "mask_contrasts",
    "probing_findings",
    "run_profiles",
    "stratified_interval",
    "swap_findings",
    "sweep_columns",
    "weights_findings",
]
