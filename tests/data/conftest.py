"""Fixtures shared by the tests of this folder."""

from __future__ import annotations

import random
import sys
import types

import pytest
from data_fakes import *  # noqa: F403


@pytest.fixture
def no_hub(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if anything reaches datasets.load_dataset."""
    import datasets

    def forbidden(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"load_dataset must not be called here: {args}")

    monkeypatch.setattr(datasets, "load_dataset", forbidden)

@pytest.fixture
def fake_toydata(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, int]]:
    calls: list[tuple[str, str, int]] = []
    module = types.ModuleType("mbt.toy.corpus")

    def toy_math(split: str, seed: int) -> list[dict]:
        calls.append(("toy_math", split, seed))
        rng = random.Random(f"{split}-{seed}")
        out = []
        for _ in range(12):
            a, b = rng.randint(2, 9), rng.randint(2, 9)
            out.append({"question": f"What is {a} times {b}?", "answer": f"{a}*{b}=<<{a}*{b}={a * b}>>{a * b}\n"
                                                                         f"#### {a * b}"})
        return out

    def toy_mc(split: str, seed: int) -> list[dict]:
        calls.append(("toy_mc", split, seed))
        return [{"question": f"Pick {i}", "subject": "toy", "choices": ["w", "x", "y", "z"], "answer": i % 4}
                for i in range(6)]

    def toy_text(split: str, seed: int) -> list[dict]:
        calls.append(("toy_text", split, seed))
        return [{"text": f"toy sentence number {i} of split {split}"} for i in range(5)] + [{"text": "   "}]

    def toy_instruct(split: str, seed: int) -> list[dict]:
        calls.append(("toy_instruct", split, seed))
        return [{"prompt": f"Write {i} words about cats."} for i in range(4)]

    for fn in (toy_math, toy_mc, toy_text, toy_instruct):
        setattr(module, fn.__name__, fn)
    monkeypatch.setitem(sys.modules, "mbt.toy.corpus", module)
    return calls
