# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 8 · Across pairs: when does the paper's pattern appear?
#
# **The question.** Whether the paper's depth signatures appear on a pair could speak for or against the
# paper, or only for or against that pair. One visible difference between the toy and a real model: the
# toy's SFT is a large share of its whole training (300 SFT steps of 32 examples against 550 pretraining
# steps of 32 × 128 tokens, about a fifth of the pretraining tokens), while a real SFT stage is a tiny
# fraction of pretraining. The verdicts of this build's own pair on the paper's claims of chapters 1–4 are
# read from its records just below the set-up; this chapter asks whether they change with SFT strength.
#
# **The SFT-intensity ladder.** From the same toy Base, `mbt.toy.ladder` fine-tunes for 10, 25, 60 and 150
# steps besides the default 300 — the same data and peak learning rate; the warm-up and decay scale with
# the length. Every rung is run twice (two *replicates*), and every run orders its SFT batches by a seed of
# its own: rungs that shared one data order would be prefixes of one training path, so a drift along that
# path would look like a trend. The rungs span SFT compute from under 1 % to about 20 % of pretraining,
# roughly evenly on a log scale; the table below gives each run's steps, examples seen and epochs over the
# SFT data. Each run is a registered pair (`toy-sft10` … `toy`, `toy-sft10-seed1` … `toy-seed1`); the
# book runs chapters 1–4 for each and keeps their results in the results store, which this chapter reads.
# The same chapter compares any pairs whose results are in a store — `mbt batch --pairs
# olmo2-1b,olmo2-7b,mistral-7b` on a GPU machine, or stores contributed to the repository's `results/`
# folder.
#
# **The signatures**, each read from a pair's stored tables (`mbt.paper.signatures`):
# $\overline{\mathrm{CKA}}_{\mathrm{middle}} - \mathrm{CKA}_L$ (a final drop is positive); the relative
# mean shift of the last fifth over the middle (a late spike is above 1); the relative Eq. 1 weight change
# of the last block over the first half (a J-shape is above 1); the depth at which the SFT logit lens
# {cite:p}`nostalgebraist2020logitlens` first
# reaches half its best top-1 accuracy (late emergence); the depth of the SFT effective rank's peak; and,
# where a LoRA sweep exists, how much the best middle mask beats full-depth LoRA {cite:p}`hu2022lora` in answer
# NLL.
#
# **How a trend is decided.** Ten runs (five rungs × two replicates) give ten values per signature, each
# run its own SFT: the runs are the units. Whether a signature grows or shrinks with SFT strength is an exact
# permutation test of Spearman's rank correlation between the runs' SFT steps $c_i$ and the signature $s_i$,
#
# $$
# \rho = \operatorname{corr}\bigl(\operatorname{rank}(c), \operatorname{rank}(s)\bigr), \qquad
# p = \frac{\#\{a : |\rho_a| \ge |\rho|\}}{\#\{a\}},
# $$
#
# over every distinct arrangement $a$ of the rungs' strengths among the runs. The two replicates of a rung
# tie in strength (mid-ranks), so there are $10!/(2!)^5 = 113{,}400$ arrangements, all enumerated
# (two-sided). The six signatures are one family, corrected with Holm's method {cite:p}`holm1979simple`;
# where the corrected p exceeds 5 % the chapter says *cannot be told*. Each run's own verdicts on the
# paper's claims (with their intervals, chapters 1–4) are in the last table.

# %% tags=["hide-input"]
# Setup: install mbt when this runtime lacks it (e.g. a fresh Colab), then pick the GPU when there is one.
import importlib.util
import subprocess
import sys

MBT = "mbt @ git+https://github.com/mbt-project/mbt"  # what pip installs when mbt is missing
if importlib.util.find_spec("mbt") is None:
    subprocess.check_call([sys.executable, "-m", "pip", "install", "-q", MBT])

from mbt import book, paper

DEVICE = book.setup_notebook()  # the book's figure style, quiet progress bars; "cuda" when a GPU is visible

# %% tags=["parameters"]
pair: str = "toy"  # the pair the book is built for
pairs: list = []  # pairs to compare (empty: the SFT ladder for a toy pair, else every pair with stored results)
stores: list = []  # more folders holding results stores (the local store and results/ are always read)
quick: bool = False  # smoke run: read the quick-mode stores

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import mbt.plots as mp
from mbt.paper import signatures as sig

names = list(pairs) or book.default_comparison(pair, quick=quick, extra=stores)
entries, missing = book.comparison_stores(names, quick=quick, extra=stores)
if missing:
    print(f"no results yet for {', '.join(missing)}: run `mbt batch --pairs {','.join(missing)}`")
display(book.store_problems_note(extra=stores))  # stores left out, and why (as under the "Paper vs ours" table)
tables = {name: entry.tables for name, entry in entries.items()}
metas = {name: entry.meta for name, entry in entries.items()}
rungs = sig.rung_table(metas)
order = rungs["pair"].tolist()
claims = [h.id for h in paper.HEADLINES if h.chapter in book.LADDER_CHAPTERS]
records = {name: entry.records for name, entry in entries.items()}
display(Markdown(sig.verdict_sentence(records.get(pair, {}), claims, pair=pair)))

# %% [markdown]
# ## What each pair is
#
# Replicate, SFT steps, examples seen (steps × batch size) and epochs over the SFT examples, SFT tokens as a
# share of pretraining tokens, exact match of Base (best of 0- and k-shot) and SFT on held-out toy-math
# problems, their answer NLL, and the mean relative change of the attention weights (toy pairs; other
# pairs show their device only).

# %%
display(rungs.round(4))

# %% [markdown]
# **What the toy's Base can and cannot do.** A Base exact match of 0 is a statement about the format: the
# toy's pretraining text never shows "Question:", "Answer:" or "####". Chapter 10 scores the same problems
# in the Base's own format and on the arithmetic alone; its numbers for this book's pair:
#
# <!-- mbt:premise -->
# *(Filled in from chapter 10's table when the book is built.)*
# <!-- /mbt:premise -->

# %% [markdown]
# ## The signatures on one depth axis
#
# One line per pair, light to dark with SFT strength; shaded bands are 95 % intervals where the chapter
# that made the curve has one; the grey band is the paper's middle (20–80 % of the depth).

# %%
fig = mp.across_figure(sig.signature_curves(tables), order, title="Depth signatures across pairs")
plt.show()

# %% [markdown]
# ## Do the signatures strengthen or fade with SFT strength?

# %%
summary = sig.signature_summary(tables, metas)
strength = {name: sig.strength_of(meta) for name, meta in metas.items()}
fig = mp.ladder_figure(summary, strength, replicate={name: sig.replicate_of(meta) for name, meta in metas.items()},
                       title="Signatures against SFT strength")
plt.show()
display(summary.round(4))
display(Markdown(sig.trend_sentences(summary)))

# %% [markdown]
# ## The paper's claims, pair by pair
#
# Each cell is that pair's verdict on the claim (chapters 1–4, with the interval and rule of its own
# chapter) and its value. *holds* and *contradicted* are decided at the 95 % level; *inconclusive* means
# the data of that pair cannot tell.

# %%
claim_table = sig.claim_table(records, claims, {h.id: h.claim for h in paper.HEADLINES})
display(claim_table)

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV, and a provenance file: the `mbt` version and commit, the pair's ids,
# revisions and weight fingerprints, the parameters, the device and the date.

# %%
book.downloads({"pairs": rungs, "signatures": summary, "claims": claim_table})
