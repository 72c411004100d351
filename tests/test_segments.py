"""Segment masks and PEFT's 0-based layer lists (mbt.segments)."""

from __future__ import annotations

import collections

import pytest

from mbt import segments
from mbt.segments import PAPER_MASKS as DEFAULT_MASKS
from mbt.tune import lora_config, segment_layers


def test_segment_layers_examples():
    assert segment_layers("01100", 16) == [3, 4, 5, 6, 7, 8]
    assert segment_layers("10", 5) == [0, 1]
    assert segment_layers("01", 5) == [2, 3, 4]
    assert segment_layers("11111", 10) == list(range(10))
    assert segment_layers("00001", 16) == [12, 13, 14, 15]  # the last segment takes the remainder
    assert segment_layers("10000", 64) == list(range(12))
    assert segment_layers("00000", 16, allow_empty=True) == []


@pytest.mark.parametrize("n_layers", [10, 16, 40, 64])
@pytest.mark.parametrize("n_segments", [3, 5, 10])
def test_single_segment_family_partitions_the_layers(n_segments, n_layers):
    family = segments.single_segment_masks(n_segments)
    assert len(family) == n_segments and all(m.count("1") == 1 for m in family)
    seen = collections.Counter(b for m in family for b in segment_layers(m, n_layers))
    assert sorted(seen) == list(range(n_layers))
    assert set(seen.values()) == {1}
    sizes = [len(segment_layers(m, n_layers)) for m in family]
    assert max(sizes) - min(sizes) <= 1  # as equal as integers allow
    for m in family:  # each segment is contiguous
        layers = segment_layers(m, n_layers)
        assert layers == list(range(layers[0], layers[-1] + 1))
    named = segments.MASK_FAMILIES.get(f"segments{n_segments}")
    if named is not None:
        assert set(family) <= set(named) and named[0] == "0" * n_segments and named[1] == "1" * n_segments


@pytest.mark.parametrize(
    ("mask", "n_layers", "message"),
    [
        ("", 16, "empty"),
        ("01a00", 16, "only contain"),
        ("0 100", 16, "only contain"),
        ("00000", 16, "no segment"),
        ("1" * 11, 10, "do not fit"),
        (10100, 16, "string"),
    ],
)
def test_invalid_masks_raise(mask, n_layers, message):
    with pytest.raises(ValueError, match=message):
        segment_layers(mask, n_layers)
    with pytest.raises(ValueError, match=message):
        lora_config(mask, n_layers)


def test_resolve_masks():
    assert segments.resolve_masks("default") == list(DEFAULT_MASKS)
    assert segments.resolve_masks("01100, 00110,01100") == ["01100", "00110"]
    assert segments.resolve_masks("segments3") == ["000", "111", "100", "010", "001"]
    with pytest.raises(ValueError, match="families"):
        segments.resolve_masks("nonsense")
