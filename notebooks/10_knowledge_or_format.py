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
# # 10 · Knowledge or format: what the Base already knows, what SFT teaches, and in which layers
#
# **The paper's claim** (its reading of its own results, §1, §2.2, §5). SFT is a "surface-level" steer
# toward a format on top of knowledge the Base already has; the last layers, the most plastic, carry
# that adaptation and overwrite what was there. The paper never measures the two apart. Scoring only in
# the task's question/answer format mixes them: a Base that never saw the format scores 0 whatever it
# knows.
#
# **Method.** The same $n$ held-out problems are scored three ways, each an exact match of the greedy
# continuation of a prompt (`mbt.evaluate.completion_exact_match`):
#
# * **own format** — the problem as the Base's pretraining text writes it. On the toy pair: the facts,
#   then " So" → the worked solution (its corpus writes the same generator's problems that way, without
#   question or "####"), right when every number of the solution is right, in order. On a real pair: the
#   task's few-shot format, `shots` solved *training* problems before "Question: …\nAnswer:", right when
#   the final answer is — the format Base models are usually evaluated in;
# * **arithmetic alone** — the own-format prompt followed by the reference solution up to its last "=",
#   right when the next number is ("… 18 - 12 =" → 6): the last computation, every earlier step given;
# * **Q/A format, 0-shot** — "Question: …\nAnswer:" → the number after "####", what SFT trained.
#
# For a model $M$ and format $f$ the score is $s_f(M) = \frac1n \sum_i c_{f,i}(M)$ with $c_{f,i} \in \{0,1\}$
# and a 95 % percentile-bootstrap interval over problems. What SFT teaches is compared per problem:
#
# $$
# d_i = \bigl(c_{\mathrm{qa},i}(\mathrm{SFT}) - c_{\mathrm{qa},i}(\mathrm{Base})\bigr)
#     - \bigl(c_{\mathrm{ar},i}(\mathrm{SFT}) - c_{\mathrm{ar},i}(\mathrm{Base})\bigr),
# $$
#
# the format gain minus the knowledge gain, decided by its bootstrap interval over problems. **By depth**:
# each segment of blocks is swapped between the models (chapter 5's machinery) and the swapped model is
# scored by the format (Q/A) and by the knowledge (arithmetic alone), per problem, so that one segment's
# effect can be compared with another's on the same problems. **By LoRA mask** {cite:p}`hu2022lora`: every
# run of chapter 6's sweep is also scored on the arithmetic alone, so the mask that wins on the task can be
# asked whether it wins on the format or on the knowledge. **Along the SFT-intensity ladder** (chapter 8)
# the three scores show where the format appears and how much of the Base's own format goes.

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
task: str = ""  # a question/answer task (empty: GSM8K as in the paper; toy pairs: toy-math)
n_items: int = 200  # held-out problems scored in every format, for every pair
shots: int = 3  # solved training problems in a real pair's own (few-shot) format; the toy's needs none
n_swap: int = 100  # problems scored for every segment swap (the first n_swap of the n_items)
n_segments: int = 5  # equal segments swapped in turn
swap_heads: list = ["receiver"]  # heads of the swaps; "donor" adds the donor's final norm and LM head
seed: int = 0  # bootstrap seed
batch_size: int = 50  # prompts per generate call (results do not depend on it)
masks: list = []  # as in chapter 6
seeds: list = [0, 1, 2]  # as in chapter 6
preset: str = "standard"  # as in chapter 6
rank: int = 0  # as in chapter 6
steps: int = 0  # as in chapter 6
n_test: int = 200  # as in chapter 6
threads: int = 1  # as in chapter 6
workers: int = 0  # as in chapter 6
quick: bool = False  # smoke run

# %%
book.check_notebook_parameters(globals())  # papermill -p values too: each parameter's type and range

import matplotlib.pyplot as plt
from IPython.display import Markdown, display

import mbt.plots as mp
from mbt import knowledge
from mbt.pairs import pair_label

n_items = book.quick_size("n_items", n_items, quick)
n_swap = min(book.quick_size("n_swap", n_swap, quick), n_items)  # quick caps both (n_swap <= n_items is checked)
knowledge.check_settings(task=task or None, n_items=n_items, shots=shots, n_swap=n_swap, n_segments=n_segments,
                         batch_size=batch_size, heads=swap_heads)  # bad settings are refused before any model loads
P = book.open_pair(pair, base, sft, device=DEVICE, device_map=device_map, sequential=sequential)
task = task or book.default_datasets(P, "finetune")[0]
label = pair_label(P)
sets = book.knowledge_prompts(task, n_items, shots)
names = book.knowledge_pairs(P)
print(f"{label}: {n_items} held-out {task} problems; pairs compared: {', '.join(names)}")

# %% [markdown]
# ## The three prompts of one problem
#
# What each model is asked, and the continuation that counts as right (the first problem).

# %%
for name, ps in sets.items():
    print(f"--- {knowledge.FORMAT_LABELS[name]} (compared by {ps.match})\n{ps.prompts[0]}\n→{ps.targets[0]}\n")

# %% [markdown]
# ## Base and SFT in three formats, along the SFT-intensity ladder
#
# One position per pair, weakest SFT first (for a toy pair the ladder of chapter 8; every rung shares the
# Base, scored once); points are exact-match rates with their 95 % bootstrap intervals over problems.

# %%
per_item = book.knowledge_ladder(P, names, sets, batch_size=batch_size, device=DEVICE)
summary = knowledge.summarize_scores(per_item, seed=seed)
gains = knowledge.paired_gains(per_item, seed=seed)
paper.save_table("knowledge", summary)  # for the introduction and chapter 8 (a no-op outside a book build)
fig = mp.knowledge_figure(summary, labels=knowledge.FORMAT_LABELS,
                          title=f"Exact match in three formats, {task}, {n_items} problems")
plt.show()
display(summary.round(3))

# %% [markdown]
# SFT − Base per pair and format, paired over problems (`gain` with its 95 % interval):

# %%
display(gains.round(3))
display(Markdown(paper.knowledge_sentences(gains)))

# %% [markdown]
# ## Which segment carries the format, which the knowledge?
#
# Each segment of blocks is swapped in both directions (receiver's head unless `swap_heads` says otherwise)
# and the swapped model is scored on the first `n_swap` problems, by the Q/A format and by the arithmetic
# alone. Points are the change against the unswapped receiver with a paired 95 % interval; the dotted line
# is the whole donor. No placebo rows here: chapter 5 checks that swapping and restoring are exact.

# %%
swaps = book.knowledge_swaps(P, sets, n_swap=n_swap, n_segments=n_segments, heads=swap_heads, seed=seed,
                             batch_size=batch_size)
for score_name, part in swaps.groupby("score_name", sort=False):
    fig = mp.swap_figure(part, title=f"Swapped segments, scored by {score_name} "
                                     f"({knowledge.FORMAT_LABELS[knowledge.SWAP_SCORES[score_name]]})")
    plt.show()
display(Markdown(paper.swap_knowledge_sentences(swaps)))
cols = ["score_name", "direction", "kind", "head", "segment", "blocks", "score", "diff", "diff_ci_low",
        "diff_ci_high", "significant", "n"]
display(swaps[cols].round(3))

# %% [markdown]
# ## The LoRA masks: format or knowledge?
#
# Chapter 6's sweep (its stored table; the same parameters) with every run also scored on the arithmetic
# alone: per mask the Q/A exact match (the task) and the arithmetic alone (the knowledge), means over seeds.

# %%
S = book.lora_sweep(P, task=task, masks=masks, seeds=seeds, preset=preset, rank=rank, steps=steps, n_test=n_test,
                    threads=threads, workers=workers, quick=quick)  # chapter 6's sweep: its stored table is reused
table = S.run(P)
fig = mp.mask_figure(table, ["accuracy", "arithmetic"], order=list(S.masks),
                     intervals={"accuracy": ("accuracy_ci_low", "accuracy_ci_high"),
                                "arithmetic": ("arithmetic_ci_low", "arithmetic_ci_high")},
                     ylabels={"accuracy": "Q/A exact match (format)", "arithmetic": "arithmetic alone (knowledge)"},
                     title=f"LoRA masks on {label}: the task and the knowledge")
plt.show()
contrasts = paper.mask_contrasts(table)
display(contrasts.round(3))
display(Markdown(paper.mask_knowledge_sentence(contrasts)))

# %% [markdown]
# ## Paper vs ours
#
# Three claims of ours, one row each, at the 95 % level (the swap claim compares the last segment with each
# other one in both directions, Bonferroni over those comparisons). The paper states the reading, not a
# number: its column says what it says.

# %%
own = per_item[per_item["pair"] == label]
findings = paper.knowledge_findings(own, swaps, seed=seed)
display(paper.report(findings, pair=label, settings={"task": task, "n_items": n_items, "n_swap": n_swap,
                                                     "n_segments": n_segments, "shots": shots}))

# %% [markdown]
# ## Download the numbers
#
# The tables behind this chapter as CSV — every problem's score per pair, model and format; the summary
# with intervals; the swaps by segment; the LoRA masks' contrasts; the findings — and a provenance file: the
# `mbt` version and commit, the pair's ids, revisions and weight fingerprints, the parameters, the device
# and the date.

# %%
book.downloads({"scores": per_item, "summary": summary, "swaps": swaps.drop(columns=["scores"], errors="ignore"),
                "lora_masks": contrasts, "findings": findings}, pair=P)
