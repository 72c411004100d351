"""Chapter 9's tables, simulated (shared by its findings tests and the headline coverage test).

Each builder returns the table a :mod:`mbt.diffing` / :mod:`mbt.equal_step` function would, with a known
effect and noise; ``rng`` is a numpy generator.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mbt import diffing
from mbt.paper.findings import diffing as F


def _ar(rng: np.random.Generator, size: int, phi: float = 0.7) -> np.ndarray:
    e = np.empty(size)
    e[0] = rng.normal()
    for i in range(1, size):
        e[i] = phi * e[i - 1] + math.sqrt(1 - phi**2) * rng.normal()
    return e


def _difference(rng, n_layers: int, slope: float, *, n: int = 40, dim: int = 8, reps: int = 300) -> pd.DataFrame:
    """activation_difference-like: per-text differences with a true offset of relative size 0.1·(1 + slope·depth).

    The noise of every layer differs (the noise floor correction must keep it from looking like a profile) and is
    shared across layers within a text (the same texts feed every layer).
    """
    depth = np.arange(n_layers + 1) / n_layers
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    shared = rng.normal(size=(n, dim))
    base = rng.uniform(9, 11, size=(n, n_layers + 1))
    weights = np.vstack([np.ones(n), *(rng.multinomial(n, np.full(n, 1.0 / n)) for _ in range(reps))])
    parts = []
    for layer in range(n_layers + 1):
        noise_sd = 0.5 + 2.0 * rng.uniform()
        own = rng.normal(size=(n, dim))
        d = 3.0 * (1 + slope * depth[layer]) * direction + noise_sd * (0.7 * shared + 0.7 * own)
        corrected, raw, bnorm, rel = diffing.relative_sizes(d, base[:, layer], weights)
        parts.append(pd.DataFrame({"layer": layer, "depth": depth[layer], "replicate": np.arange(len(weights)) - 1,
                                   "relative": rel, "delta_norm": corrected, "raw_norm": raw, "base_norm": bnorm,
                                   "n": n, "k": 5}))
    return pd.concat(parts, ignore_index=True)


def _steering(rng, n_layers: int, effect: float, n: int = 40) -> pd.DataFrame:
    parts = []
    for layer in range(1, n_layers + 1):
        common = rng.normal(0, 0.05, n)
        rand = 0.02 + common + rng.normal(0, 0.05, n)
        red = rand + effect + rng.normal(0, 0.05, n)
        parts.append(pd.DataFrame({"layer": layer, "depth": layer / n_layers, "text": np.arange(n), "kl_base": 2.0,
                                   "kl_steered": 2.0 - red, "kl_random": 2.0 - rand, "reduction": red,
                                   "reduction_random": rand, "alpha": 1.0, "delta_norm": 1.0}))
    return pd.concat(parts, ignore_index=True)


def _gap(rng, n_layers: int, late_gap: float, n: int = 40) -> pd.DataFrame:
    layers = np.arange(1, n_layers + 1)
    d = layers / n_layers
    text_effect = np.stack([_ar(rng, n_layers) * 0.2 for _ in range(n)])  # (n, L), shared by both models
    parts = []
    for model in ("base", "sft"):
        value = 3.0 * (1 - d)[None, :] + text_effect + rng.normal(0, 0.1, (n, n_layers))
        if model == "sft":
            value = value + late_gap * (d > 0.5)[None, :]
        value[:, -1] = 0.0
        parts.append(pd.DataFrame({"model": model, "layer": np.tile(layers, n), "depth": np.tile(d, n),
                                   "text": np.repeat(np.arange(n), n_layers), "value": value.reshape(-1)}))
    return pd.concat(parts, ignore_index=True)


def _grafts(rng, mlp: float, back: float, attn: float, n: int = 40) -> pd.DataFrame:
    rows = []
    for direction, receiver, shifts in (("sft→base", "base", {"mlp": mlp, "attn": attn}),
                                        ("base→sft", "sft", {"mlp": back, "attn": 0.0})):
        own = 1.0 + rng.normal(0, 0.2, n)
        rows += [{"direction": direction, "receiver": receiver, "part": "none", "kind": "receiver", "blocks": "6,7",
                  "text": i, "score": own[i]} for i in range(n)]
        for part, shift in shifts.items():
            for kind, s in (("graft", shift), ("random", 0.0)):
                values = own + s + rng.normal(0, 0.05, n)
                rows += [{"direction": direction, "receiver": receiver, "part": part, "kind": kind, "blocks": "6,7",
                          "text": i, "score": values[i]} for i in range(n)]
    return pd.DataFrame(rows)


def _tokens(rng, template_gap: float, n: int = 40) -> pd.DataFrame:
    rows = []
    for i in range(n):
        level = rng.gamma(2.0, 0.5)
        for t in range(30):
            kind = "template" if t % 6 == 0 else ("prompt" if t < 20 else "answer")
            kl = max(0.0, level + (template_gap if kind == "template" else 0.0) + rng.normal(0, 0.3))
            rows.append({"text": i, "position": t, "relative_position": t / 29, "kind": kind, "kl": kl})
    return pd.DataFrame(rows)


SIGS = ("eq1", "cka", "shift", "lens")


def _runs(rng, n_layers: int, *, equal_profile: float, standard_profile: float, steps=(25, 60, 300),
          seeds=(0, 1)) -> pd.DataFrame:
    """equal_step_runs-like curves whose late band is shifted so each run's profile is the given one (+ seed noise)."""
    rows = []
    for sig in SIGS:
        how, sign = F.SIGNATURE_PROFILES[sig]
        layers = range(1, n_layers + 1) if sig in ("eq1", "lens") else range(n_layers + 1)
        for k_i, k in enumerate(steps):
            level = 0.5 + 0.2 * k_i  # lengths differ in level and in their own profile
            for s in seeds:
                noise = _ar(rng, n_layers + 1, 0.5) * 0.01
                for rule, target in (("standard", standard_profile), ("equal_step", equal_profile)):
                    run_target = target + 0.05 * (k_i - (len(steps) - 1) / 2) + rng.normal(0, 0.02)
                    seed_noise = 0.01 * rng.normal(size=n_layers + 1)
                    for layer in layers:
                        d = layer / n_layers
                        late = d > 0.8
                        if how == "ratio":
                            value = level * (1 + (sign * run_target if late else 0.0))
                        else:
                            value = level + (sign * run_target if late else 0.0)
                        rows.append({"rule": rule, "steps": k, "seed": s, "signature": sig, "layer": layer,
                                     "depth": d, "value": value + noise[layer] + seed_noise[layer]})
    return pd.DataFrame(rows)


# ---- constructed cases ----------------------------------------------------------------------------------
