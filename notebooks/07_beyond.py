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
# # 7 · Beyond the paper: choosing the block without training, and which conclusions survive the fixes
#
# Two questions the paper leaves open.
#
# **A training-free block selector.** The paper's limitations section asks for "an adaptive, training-free
# metric to automatically identify these optimal boundaries". `mbt.select.suggest_block` proposes a mask from
# signals `mbt` already computes without any tuning (change points of the Base-vs-SFT CKA or effective-rank
# curves, the block influence $1 - \cos(h_l, h_{l+1})$, logit-lens {cite:p}`nostalgebraist2020logitlens`
# emergence, weight spectra); the evidence it used is drawn below. We score it against the exhaustive sweep of
# chapter 6 (cached, so nothing is trained again) by its **regret**:
#
# $$
# \mathrm{regret} = \max_{m} \overline{\mathrm{score}}(m) - \overline{\mathrm{score}}(\hat m),
# $$
#
# the gap between the best swept mask and the suggested one $\hat m$ (means over seeds).
#
# Other ways to choose layers answer different questions. Spectrum {cite:p}`hartford2024spectrum` ranks weight
# matrices by a random-matrix signal-to-noise ratio, from the weights alone; data-oblivious critical layers
# {cite:p}`liu2025spectral` are where the CKA between consecutive layers of the un-tuned model drops; ILA
# {cite:p}`shi2025ila` learns which layers matter during alignment itself; LISA {cite:p}`pan2024lisa` and OWS
# {cite:p}`li2025ows` sample the layers to update during training instead of fixing a block. The selector here
# fixes one contiguous block before training, as the paper's Mid-Block LoRA {cite:p}`hu2022lora` does, and is
# graded by what that block achieves in chapter 6's sweep.
#
# **`paper` vs `standard` conventions.** Where the paper's formulas are ambiguous or its code differs
# from the textbook definitions — no centring, $\sigma^2$ in the effective rank, normalisation by
# $\min(N, D)$, a sparsity threshold relative to the sample's largest activation, clipped curvature — the
# `paper` preset reproduces the released code and `standard` fixes it. Running every representation
# claim of chapters 1 and 2 under both shows which conclusions depend on those choices.

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
pair: str = "toy"  # a registered pair (`mbt pairs`)
base: str = ""  # Base model folder or Hub id; with `sft` it replaces `pair`
sft: str = ""  # SFT model folder or Hub id
device_map: str = ""  # "auto" spreads a large pair over several GPUs
sequential: bool = False  # load one model at a time: Base, then SFT (a large pair on one GPU)
datasets: list = []  # the first is used (empty: the pair's defaults, as in chapter 1)
n_pooled: int = 1000  # as in chapter 1
n_token: int = 100
seed: int = 0
batch_size: int = 8
max_length: int = 512
n_segments: int = 5  # segments of the suggested mask
task: str = ""  # as in chapter 6 (empty: GSM8K; toy pairs: toy-math)
masks: list = []  # as in chapter 6 (empty: the paper's ten)
seeds: list = [0, 1, 2]  # as in chapter 6
preset: str = "standard"  # as in chapter 6
rank: int = 0  # as in chapter 6
steps: int = 0  # as in chapter 6
n_test: int = 200  # as in chapter 6
threads: int = 1  # as in chapter 6
workers: int = 0  # as in chapter 6
n_calibration: int = 200  # texts the selector reads (no labels are used)
quick: bool = False  # smoke run

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

import mbt
import mbt.plots as mp
from mbt import select
from mbt.pairs import pair_label

P = book.open_pair(pair, base, sft, device=DEVICE, device_map=device_map, sequential=sequential)
datasets = list(datasets) or book.default_datasets(P)
n_pooled, n_token = book.sizes(n_pooled, n_token, quick)
S = book.lora_sweep(P, task=task, masks=masks, seeds=seeds, preset=preset, rank=rank, steps=steps, n_test=n_test,
                    threads=threads, workers=workers, quick=quick)  # chapter 6's sweep: its stored table is reused
n_calibration = book.quick_size("n_calibration", n_calibration, quick)
label = pair_label(P)
calibration = mbt.load_texts(S.task, n=n_calibration, seed=seed)

# %% [markdown]
# ## A · The training-free selector against the sweep
#
# The selector reads `n_calibration` texts of the tuning task (no labels, no gradient) and proposes a
# contiguous block of segments, preferring the *stable* ones (the paper's hypothesis). To grade it
# against chapter 6's sweep it also picks the best among the masks that sweep ran.

# %%
sweep = S.run(P)
free, evidence = select.suggest_block(P, calibration, n_segments=n_segments, progress=False)
candidates = [m for m in S.masks if "1" in m and len(m) == n_segments]
graded, graded_evidence = select.suggest_block(P, calibration, n_segments=n_segments, candidates=candidates,
                                               progress=False)
print(f"free suggestion: {free}; best among the swept masks: {graded}")
fig = mp.selector_figure(select.evidence_curves(evidence), free, P.n_layers,
                         title=f"Selector evidence on {label}: {free} (shaded) is the most stable block")
plt.show()

# %% [markdown]
# Regret and rank against the sweep (`mbt.select.selector_regret`), for the exact-match score and for
# the less noisy answer NLL. `spearman` compares the selector's ranking of all swept masks with the
# sweep's (positive = the selector orders masks like training does).

# %%
rows = [select.selector_regret(graded, sweep, metric, selector_scores=graded_evidence)
        for metric in ("accuracy", "answer_nll")]
regret = pd.DataFrame(rows)
display(regret.round(4))
first = rows[0]
display(Markdown(
    f"Among {first['n_masks']} tuned masks the selector picks **{graded}**, ranked {first['suggested_rank']} by "
    f"exact match (regret {first['regret']:.3f}; best: {first['best_mask']}) and {rows[1]['suggested_rank']} by "
    f"answer NLL (regret {rows[1]['regret']:.3f}; best: {rows[1]['best_mask']})."))

# %% [markdown]
# **Two training-free baselines from the literature**, graded the same way on the same sweep. Spectrum
# {cite:p}`hartford2024spectrum` scores every weight matrix by a signal-to-noise ratio from a random-matrix fit of its
# singular values: with the noise scale $\hat\sigma$ fitted to the median singular value under the
# Marchenko–Pastur law and the bulk edge $s_+ = \hat\sigma(\sqrt m + \sqrt n)$,
#
# $$
# \mathrm{SNR}(W) = \sum_{s_i > s_+} s_i \Big/ \sum_{s_i \le s_+} s_i ,
# $$
#
# and trains the matrices of highest SNR per matrix type (weights only, no data). The data-oblivious critical
# layers {cite:p}`liu2025spectral` are the blocks across which the Base's representation shifts most,
# $1 - \mathrm{CKA}(h_{l-1}, h_l)$ on the calibration texts. Each baseline picks, among the swept masks, the one
# whose blocks score highest.

# %%
picks = {"mbt.select": (graded, graded_evidence),
         **{m: select.suggest_baseline(P, calibration, method=m, candidates=candidates, n_segments=n_segments)
            for m in select.BASELINES}}
baselines = select.regret_table(picks, sweep)
display(baselines[["selector", "metric", "suggested", "regret", "suggested_rank", "n_masks", "best_mask",
                   "spearman"]].round(4))

# %% [markdown]
# ## B · The same claims under the paper's conventions
#
# Every metric of chapters 1–2 on the first dataset, computed twice (both results are cached):

# %%
frames = {c: book.analyze_datasets(P, datasets[:1], n_pooled=n_pooled, n_token=n_token, seed=seed, conventions=c,
                                   batch_size=batch_size, max_length=max_length)
          for c in ("standard", "paper")}
fig = mp.conventions_figure(frames, ["cka", "effective_rank", "prompt_entropy", "sparsity", "curvature",
                                     "condition_number"],
                            title=f"standard vs paper conventions on {label}, {datasets[0]}")
plt.show()

# %% [markdown]
# *What to look for:* the effective rank changes its scale (the paper's preset divides by $\min(N, D)$
# and weights by $\sigma^2$), the curvature its units (radians vs fractions of $\pi$), the sparsity its
# threshold. A conclusion survives when its verdict is the same in both columns of the table below.

# %%
comparison = paper.compare_conventions(frames)
display(comparison)
display(Markdown(paper.conventions_sentence(comparison)))

# %% [markdown]
# Two more of the authors' choices are not metric conventions and are tested in their own chapters:
# the doubled final norm of the logit lens (chapter 3: the crosses at the last layer) and the swapping
# effect sizes next to their sampling noise (chapter 5: the paired intervals).

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV, and a provenance file: the `mbt` version and commit, the pair's ids,
# revisions and weight fingerprints, the parameters, the device and the date.

# %%
book.downloads({"selector_regret": regret, "selector_evidence": select.evidence_curves(evidence),
                "baselines_regret": baselines, "conventions": comparison}, pair=P)
