r"""Simulated data with no true effect (and with a known one): the nulls every verdict rule is calibrated on.

One home for the simulators shared by the calibration tests and ``scripts/calibrate_verdicts.py``. Every
generator is vectorised over replicates (the leading axis) and seeded by the caller's
:class:`numpy.random.Generator`, so a calibration of a few thousand cases takes a fraction of a second.

Depth and shapes (relative depth ``d = l / L`` for layers ``l = 1..L``, :func:`depth_grid`):

* ``"flat"`` — ``0``;
* ``"j"`` — ``(e^{4d} − 1) / (e^4 − 1)``: small early, climbing after the midpoint (the paper's J shape);
* ``"hinge"`` — ``max(0, d − 0.8) / 0.2``: flat, then a spike in the last 20 % of depth;
* ``"power"`` — ``d^8``: a steep power law, nearly flat until the last layers.

Every shape runs from ``0`` (or near it) to ``1`` at ``d = 1`` so that an amplitude multiplies it directly.

Noise over depth is a stationary AR(1) series (:func:`ar1`): ``e_1 ~ N(0, σ²)``,
``e_l = φ e_{l−1} + √(1 − φ²)·σ·z_l``, so that its marginal standard deviation is ``σ`` at every layer
(``φ = 0.9`` is the "smooth" noise of the calibration tables: neighbouring layers nearly equal).

Bootstrap replicates of a per-layer statistic (:func:`replicates`) are simulated parametrically: the
estimate is ``truth + e`` and each replicate is ``estimate + e*_b`` with ``e`` and the ``e*_b`` independent
draws of the same AR(1) process — what a joint bootstrap over texts (the same resampled texts at every
layer) approximates. Two models measured on the same texts (:func:`paired_replicates`) have errors
correlated ``ρ`` between the models at each layer, in the estimate and in every replicate alike.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = [
    "SHAPES",
    "ar1",
    "depth_grid",
    "ladder_values",
    "lora_scores",
    "paired_replicates",
    "random_smooth_curves",
    "replicates",
    "shape",
]

SHAPES: tuple[str, ...] = ("flat", "j", "hinge", "power")
"""Depth shapes of :func:`shape`."""


def depth_grid(n_layers: int) -> np.ndarray:
    """Relative depth ``l / L`` of layers ``1..L``, shape ``(L,)``.

    Raises:
        ValueError: ``n_layers < 2``.
    """
    if n_layers < 2:
        raise ValueError(f"n_layers must be >= 2, got {n_layers}")
    return np.arange(1, n_layers + 1, dtype=float) / n_layers


def shape(kind: str, depth: Sequence[float] | np.ndarray) -> np.ndarray:
    """A smooth depth shape (see the module docstring), shape ``(L,)``, equal to 1 at ``d = 1`` (0 for flat).

    Args:
        kind: One of :data:`SHAPES`.
        depth: Relative depth per layer.

    Returns:
        The shape's values at ``depth``.
    """
    d = np.asarray(depth, dtype=float)
    if kind == "flat":
        return np.zeros_like(d)
    if kind == "j":
        return np.expm1(4.0 * d) / math.expm1(4.0)
    if kind == "hinge":
        return np.clip(d - 0.8, 0.0, None) / 0.2
    if kind == "power":
        return d**8
    raise ValueError(f"kind must be one of {SHAPES}, got {kind!r}")


def ar1(rng: np.random.Generator, size: tuple[int, ...], phi: float, sd: float = 1.0) -> np.ndarray:
    r"""Stationary AR(1) noise along the last axis with marginal SD ``sd`` (vectorised over leading axes).

    ``e_1 = σ z_1``, ``e_l = φ e_{l−1} + √(1 − φ²)·σ·z_l`` with ``z`` standard normal; ``Cov(e_l, e_{l+k}) = σ² φ^k``.

    Args:
        rng: Random generator.
        size: Output shape; the last axis is depth.
        phi: Lag-1 autocorrelation in ``[0, 1)``.
        sd: Marginal standard deviation.

    Returns:
        Array of ``size``.
    """
    if not 0.0 <= phi < 1.0:
        raise ValueError(f"phi must be in [0, 1), got {phi}")
    z = rng.standard_normal(size)
    out = np.empty(size)
    out[..., 0] = z[..., 0]
    c = math.sqrt(1.0 - phi * phi)
    for t in range(1, size[-1]):
        out[..., t] = phi * out[..., t - 1] + c * z[..., t]
    return sd * out


def random_smooth_curves(rng: np.random.Generator, reps: int, n_layers: int, *,
                         kinds: Sequence[str] = ("j", "hinge", "power"), phis: Sequence[float] = (0.0, 0.5, 0.9),
                         noise: tuple[float, float] = (0.05, 0.5), trend_sd: float = 0.0) -> np.ndarray:
    r"""Independent smooth random curves: a random shape with a random sign plus AR(1) noise, ``(reps, L)``.

    Curve ``i`` is ``s_i·shape_{k_i}(d) + β_i·(d − ½) + σ_i·AR_{φ_i}``: the kind ``k_i`` uniform over ``kinds``
    (``"ar"`` = no shape, an AR(0.9) curve of SD 1 instead), the sign ``s_i = ±1`` with probability ½ each,
    a random linear trend ``β_i ~ N(0, trend_sd²)``, the noise SD ``σ_i`` log-uniform in ``noise`` and
    ``φ_i`` uniform over ``phis``. Two calls give two independent families: the null of a raw correlation
    between curves that are smooth but unrelated.

    Args:
        rng: Random generator.
        reps: Number of curves.
        n_layers: Layers per curve.
        kinds: Shapes drawn from (:data:`SHAPES` or ``"ar"``).
        phis: Autocorrelations of the noise drawn from.
        noise: Range of the noise SD relative to the shape's amplitude 1.
        trend_sd: SD of the random linear trend's slope per unit depth.

    Returns:
        Curves, shape ``(reps, n_layers)``.
    """
    d = depth_grid(n_layers)
    kinds = tuple(kinds)
    k = rng.integers(0, len(kinds), size=reps)
    sign = rng.choice([-1.0, 1.0], size=reps)
    sd = np.exp(rng.uniform(math.log(noise[0]), math.log(noise[1]), size=reps))
    out = np.empty((reps, n_layers))
    for i, kind in enumerate(kinds):
        rows = k == i
        base = np.zeros(n_layers) if kind == "ar" else shape(kind, d)
        out[rows] = sign[rows, None] * base[None, :]
        if kind == "ar":
            out[rows] += ar1(rng, (int(rows.sum()), n_layers), 0.9)
    if trend_sd > 0:
        out += trend_sd * rng.standard_normal((reps, 1)) * (d - 0.5)[None, :]
    phi_idx = rng.integers(0, len(phis), size=reps)
    for j, phi in enumerate(phis):
        rows = phi_idx == j
        out[rows] += sd[rows, None] * ar1(rng, (int(rows.sum()), n_layers), phi)
    return out


def replicates(rng: np.random.Generator, truth: np.ndarray, *, n_boot: int, sd: float | np.ndarray,
               phi: float = 0.9) -> tuple[np.ndarray, np.ndarray]:
    r"""Point estimates and joint bootstrap replicates of per-layer statistics with AR(1) errors over depth.

    ``estimate = truth + e`` and ``replicate_b = estimate + e*_b`` with ``e``, ``e*_b`` independent
    :func:`ar1` draws of marginal SD ``sd`` (a scalar or one value per layer).

    Args:
        rng: Random generator.
        truth: True curves, shape ``(reps, L)``.
        n_boot: Replicates per curve.
        sd: Standard error of each layer's estimate, scalar or ``(L,)``.
        phi: Correlation of the errors of neighbouring layers.

    Returns:
        ``(estimate (reps, L), replicates (reps, n_boot, L))``.
    """
    t = np.asarray(truth, dtype=float)
    if t.ndim != 2:
        raise ValueError(f"truth must be (reps, L), got shape {t.shape}")
    reps, n = t.shape
    s = np.asarray(sd, dtype=float)
    est = t + s * ar1(rng, (reps, n), phi)
    boot = est[:, None, :] + s * ar1(rng, (reps, n_boot, n), phi)
    return est, boot


def paired_replicates(rng: np.random.Generator, base: np.ndarray, sft: np.ndarray, *, n_boot: int,
                      sd: float | np.ndarray, phi: float = 0.9,
                      rho: float = 0.5) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    r"""Joint replicates of one metric for two models measured on the same texts.

    Errors of Base ``e_B`` and SFT ``e_S = ρ e_B + √(1 − ρ²)·e'`` (``e_B``, ``e'`` independent :func:`ar1`
    draws), in the estimate and in every replicate: the same resampled texts feed both models.

    Args:
        rng: Random generator.
        base: True Base curves, ``(reps, L)``.
        sft: True SFT curves, ``(reps, L)``.
        n_boot: Replicates.
        sd: Standard error per layer (scalar or ``(L,)``), the same for both models.
        phi: Correlation of neighbouring layers' errors.
        rho: Correlation of the two models' errors at a layer.

    Returns:
        ``(base_estimate, sft_estimate, base_replicates, sft_replicates)`` with shapes ``(reps, L)`` and
        ``(reps, n_boot, L)``.
    """
    b, s_ = np.asarray(base, dtype=float), np.asarray(sft, dtype=float)
    if b.shape != s_.shape or b.ndim != 2:
        raise ValueError(f"base and sft must be the same (reps, L) shape, got {b.shape} and {s_.shape}")
    reps, n = b.shape
    s = np.asarray(sd, dtype=float)
    c = math.sqrt(1.0 - rho * rho)
    e_b, e_o = ar1(rng, (reps, n), phi), ar1(rng, (reps, n), phi)
    r_b, r_o = ar1(rng, (reps, n_boot, n), phi), ar1(rng, (reps, n_boot, n), phi)
    est_b, est_s = b + s * e_b, s_ + s * (rho * e_b + c * e_o)
    return (est_b, est_s, est_b[:, None, :] + s * r_b, est_s[:, None, :] + s * (rho * r_b + c * r_o))


def lora_scores(rng: np.random.Generator, reps: int, *, n_seeds: int, n_problems: int,
                effect: float = 0.0, base_rate: float = 0.3, seed_sd: float = 0.02,
                interaction_sd: float = 0.0, skew: str = "none") -> tuple[np.ndarray, np.ndarray]:
    r"""Per-problem 0/1 scores of two LoRA masks over seeds and test problems, ``(reps, S, P)`` each.

    Problem ``p`` has a difficulty ``a_p ~ N(0, 1)`` on the logit scale shared by both masks; each mask ``m`` has
    a mask × problem interaction ``g_{mp} ~ N(0, interaction_sd²)`` (the same for every seed: the masks are
    scored on the same problems) and a training outcome per seed ``u_{ms}``. The score of mask ``m`` with seed
    ``s`` on problem ``p`` is Bernoulli with probability ``expit(logit(base_rate) + a_p + g_{mp}) + u_{ms} + δ_m``
    (clipped to ``[0, 1]``), ``δ_a = effect``, ``δ_b = 0``. ``u_{ms}`` is normal with SD ``seed_sd``, or for the
    masks named by ``skew`` (``"a"``, ``"both"``) a centred exponential (skewness −2) of the same SD with its
    long tail downwards: a seed that now and then trains badly. Skew in one mask only makes the paired
    difference skewed (in both, it is symmetric).

    Args:
        rng: Random generator.
        reps: Simulated experiments.
        n_seeds: Seeds ``S`` per mask (the same seeds for both masks, paired).
        n_problems: Test problems ``P``.
        effect: True difference of success probability, mask a − mask b.
        base_rate: Mean success probability of mask b.
        seed_sd: SD of a seed's training outcome, in probability.
        interaction_sd: SD of the mask × problem interaction on the logit scale.
        skew: Which masks have skewed seed outcomes: ``"none"``, ``"a"`` or ``"both"``.

    Returns:
        ``(scores_a, scores_b)``, each ``(reps, n_seeds, n_problems)`` of 0.0 / 1.0.
    """
    if skew not in ("none", "a", "both"):
        raise ValueError(f"skew must be 'none', 'a' or 'both', got {skew!r}")
    logit0 = math.log(base_rate / (1.0 - base_rate))
    a = rng.standard_normal((reps, 1, n_problems))

    def seed_noise(skewed: bool) -> np.ndarray:
        if skewed:
            return -seed_sd * (rng.exponential(1.0, (reps, n_seeds, 1)) - 1.0)
        return seed_sd * rng.standard_normal((reps, n_seeds, 1))

    out = []
    for mask, delta in (("a", effect), ("b", 0.0)):
        g = interaction_sd * rng.standard_normal((reps, 1, n_problems))
        u = seed_noise(skew == "both" or skew == mask)
        prob = np.clip(1.0 / (1.0 + np.exp(-(logit0 + a + g))) + u + delta, 0.0, 1.0)
        out.append((rng.random((reps, n_seeds, n_problems)) < prob).astype(float))
    return out[0], out[1]


def ladder_values(rng: np.random.Generator, reps: int, *, n_rungs: int, n_seeds: int, shared_path: bool,
                  trend: float = 0.0, drift_sd: float = 1.0, noise_sd: float = 0.3,
                  levels: int | None = None) -> np.ndarray:
    r"""A signature measured on an SFT-strength ladder, ``(reps, n_rungs, n_seeds)``.

    ``v_{rs} = trend·r/(R − 1) + w_{rs} + ε_{rs}`` for rung ``r = 0..R−1`` and seed ``s``, with measurement noise
    ``ε ~ N(0, noise_sd²)`` and a drift ``w`` with no direction: with ``shared_path`` the rungs of one seed are
    checkpoints of one training run, so ``w_{·s}`` is a random walk along the rungs (Gaussian steps of SD
    ``drift_sd``, starting at 0 on the first rung) — correlated across rungs, independent across seeds;
    without it every (rung, seed) is its own run whose drift has the same spread, ``w_{rs} ~ N(0, r·drift_sd²)``,
    independently. ``levels`` rounds the values to a grid of that many
    steps per unit (a discrete signature such as a peak depth on ``levels`` layers, with ties).

    Args:
        rng: Random generator.
        reps: Simulated ladders.
        n_rungs: Rungs ``R``.
        n_seeds: Seeds ``S`` per rung.
        shared_path: Whether the rungs of one seed share a training path.
        trend: True change of the signature from the weakest to the strongest rung.
        drift_sd: SD of the drift (per step along a shared path).
        noise_sd: SD of the measurement noise.
        levels: Rounding grid (``None``: continuous values).

    Returns:
        Values, shape ``(reps, n_rungs, n_seeds)``.
    """
    steps = drift_sd * rng.standard_normal((reps, n_rungs, n_seeds))
    rung = np.arange(n_rungs, dtype=float)[None, :, None]
    if shared_path:
        steps[:, 0, :] = 0.0
        w = np.cumsum(steps, axis=1)
    else:
        w = np.sqrt(rung) * steps
    v = trend * rung / max(n_rungs - 1, 1) + w + noise_sd * rng.standard_normal((reps, n_rungs, n_seeds))
    if levels is not None:
        v = np.round(v * levels) / levels
    return v
