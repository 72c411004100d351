r"""Segments, masks and block numbering: the one home of "which blocks does a mask switch on".

**Blocks.** A decoder of ``L`` blocks is numbered ``1..L``: block ``l`` reads layer ``l − 1`` of the
residual stream and writes layer ``l`` (layer ``0`` is the embedding output). Every public function of
``mbt`` that takes or returns *blocks* uses this numbering. The only exception is PEFT's
``layers_to_transform``, which counts blocks from ``0``; it appears only where a name says so
(:func:`segment_layers`).

**Segments.** ``n`` segments partition the ``L`` blocks: segment ``i`` (``0 ≤ i < n``) holds the blocks
``l`` with ``⌊iL/n⌋ < l ≤ ⌊(i+1)L/n⌋``, i.e. the 0-based blocks ``[⌊iL/n⌋, ⌊(i+1)L/n⌋)``. When ``n``
does not divide ``L`` the later segments are the longer ones.

**Masks.** A mask is a string over ``{0, 1}`` of length ``n``, first character = the segment nearest the
input; ``"1"`` switches a segment on (``"01100"``: the second and third fifths of the depth). The
all-zero mask means "no adapter" in a sweep.

**Middle band.** The paper calls the layers between 20 % and 80 % of the depth the middle
(:data:`MIDDLE`, on relative depth ``l / L``).
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "MASK_FAMILIES",
    "MIDDLE",
    "PAPER_MASKS",
    "check_mask",
    "contiguous_masks",
    "mask_blocks",
    "resolve_masks",
    "segment_blocks",
    "segment_layers",
    "single_segment_masks",
]

MIDDLE: tuple[float, float] = (0.2, 0.8)
"""The paper's middle layers, as relative depth ``l / L``: 20 %–80 %."""


def single_segment_masks(n_segments: int) -> tuple[str, ...]:
    """The ``n`` masks that each switch on exactly one segment, input side first.

    Example:
        >>> single_segment_masks(3)
        ('100', '010', '001')
    """
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    return tuple("".join("1" if j == i else "0" for j in range(n_segments)) for i in range(n_segments))


PAPER_MASKS: tuple[str, ...] = (
    "00000", "11111", "10000", "01000", "00100", "00010", "00001", "01100", "00110", "01110",
)
"""The paper's 5-segment masks (Fig. 7, App. B): no adapter, full depth, each single segment, three middle blocks."""

MASK_FAMILIES: dict[str, tuple[str, ...]] = {
    "default": PAPER_MASKS,
    "segments3": ("000", "111", *single_segment_masks(3)),
    "segments5": ("00000", "11111", *single_segment_masks(5)),
    "segments10": ("0" * 10, "1" * 10, *single_segment_masks(10)),
}
"""Named mask lists: the Fig. 7 set and the 3-/10-segment families of Appendix A (each: no adapter,
full depth, then every single segment)."""


def check_mask(mask: str) -> str:
    """Return ``mask`` if it is a non-empty string over ``{0, 1}``; raise ``ValueError`` saying what is wrong."""
    if not isinstance(mask, str):
        raise ValueError(f"a segment mask must be a string of 0s and 1s, got {type(mask).__name__} {mask!r}")
    if not mask:
        raise ValueError("a segment mask must not be empty (use e.g. '01100': one character per segment)")
    bad = sorted(set(mask) - {"0", "1"})
    if bad:
        raise ValueError(f"segment mask {mask!r} may only contain '0' and '1' (found {''.join(bad)!r})")
    return mask


def _bounds(n_segments: int, n_layers: int) -> list[tuple[int, int]]:
    """0-based ``[start, end)`` block ranges of the segments (private: public functions speak blocks 1..L)."""
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    if n_segments > n_layers:
        raise ValueError(f"{n_segments} segments do not fit into {n_layers} layers (a segment would be empty)")
    return [(i * n_layers // n_segments, (i + 1) * n_layers // n_segments) for i in range(n_segments)]


def segment_blocks(n_layers: int, n_segments: int, *, depth: int | None = None) -> list[list[int]]:
    """The blocks (``1..L``) of each of ``n_segments`` segments, input side first.

    With ``depth = k`` only the last ``k`` blocks of each segment are kept (the swap experiment's
    default of 2: ``L = 40``, 5 segments → ``[7, 8], [15, 16], …, [39, 40]``).

    Example:
        >>> segment_blocks(7, 3)
        [[1, 2], [3, 4], [5, 6, 7]]

    Raises:
        ValueError: ``n_segments`` not in ``1..L``, or ``depth < 1``.
    """
    if not 1 <= n_segments <= n_layers:
        raise ValueError(f"n_segments must be in 1..{n_layers} (the number of blocks), got {n_segments}")
    if depth is not None and depth < 1:
        raise ValueError(f"depth must be >= 1 (or None for whole segments), got {depth}")
    out = []
    for start, end in _bounds(n_segments, n_layers):
        if depth is not None:
            start = max(start, end - depth)
        out.append([b + 1 for b in range(start, end)])
    return out


def mask_blocks(mask: str, n_layers: int) -> list[int]:
    """The blocks (``1..L``) a mask switches on; ``[]`` for an all-zero mask.

    Example:
        >>> mask_blocks("01100", 16)
        [4, 5, 6, 7, 8, 9]
    """
    check_mask(mask)
    bounds = _bounds(len(mask), n_layers)
    return [b + 1 for bit, (lo, hi) in zip(mask, bounds, strict=True) if bit == "1" for b in range(lo, hi)]


def segment_layers(mask: str, n_layers: int, *, allow_empty: bool = False) -> list[int]:
    """PEFT's ``layers_to_transform`` for a mask: the 0-based indices of the blocks it switches on.

    This is :func:`mask_blocks` minus one, the only 0-based block view in ``mbt``.

    Examples:
        >>> segment_layers("01100", 16)
        [3, 4, 5, 6, 7, 8]
        >>> segment_layers("10", 5)
        [0, 1]

    Args:
        mask: one character per segment, ``"1"`` = adapters on; the first character is the segment
            nearest the input.
        n_layers: number of decoder blocks ``L``.
        allow_empty: return ``[]`` for an all-zero mask instead of raising.

    Raises:
        ValueError: empty mask, characters other than ``0``/``1``, more segments than layers, or an
            all-zero mask where adapters are needed.
    """
    layers = [b - 1 for b in mask_blocks(mask, n_layers)]
    if not layers and not allow_empty:
        raise ValueError(f"segment mask {mask!r} switches on no segment; LoRA needs at least one '1' "
                         "(use a sweep's all-zero mask for 'no adapter')")
    return layers


def contiguous_masks(n_segments: int, width: int | None = None) -> list[str]:
    """Every mask whose ``1`` s form one contiguous run (of ``width`` segments, or of every width 1..n).

    Example:
        >>> contiguous_masks(3, 2)
        ['110', '011']
    """
    if n_segments < 1:
        raise ValueError(f"n_segments must be >= 1, got {n_segments}")
    widths = range(1, n_segments + 1) if width is None else [width]
    return ["0" * s + "1" * w + "0" * (n_segments - s - w) for w in widths for s in range(n_segments - w + 1)]


def resolve_masks(masks: str | Iterable[str], *, n_layers: int | None = None) -> list[str]:
    """A family name (:data:`MASK_FAMILIES`), a comma-separated string or a list → checked, de-duplicated masks.

    Args:
        masks: ``"default"``, ``"segments10"``, ``"01100,00110"`` or ``["01100", "00110"]``.
        n_layers: when given, every mask is also checked to fit a model of that depth (no more
            segments than blocks), so a bad mask is refused before anything trains.
    """
    if isinstance(masks, str):
        if masks in MASK_FAMILIES:
            masks = MASK_FAMILIES[masks]
        elif set(masks) <= {"0", "1", ",", " "}:
            masks = [m.strip() for m in masks.split(",") if m.strip()]
        else:
            raise ValueError(f"unknown mask family {masks!r}; families: {', '.join(MASK_FAMILIES)}, "
                             "or give masks like '01100,00110'")
    out = list(dict.fromkeys(check_mask(m) for m in masks))
    if not out:
        raise ValueError("no masks given")
    if n_layers is not None:
        for mask in out:
            _bounds(len(mask), n_layers)
    return out
