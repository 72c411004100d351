"""Deprecated: the toy corpus and tasks moved to :mod:`mbt.toy.corpus` (this alias lasts one release)."""

from __future__ import annotations

import warnings

from mbt.toy.corpus import *  # noqa: F403
from mbt.toy.corpus import __all__  # noqa: F401

warnings.warn("mbt.toydata moved to mbt.toy.corpus", DeprecationWarning, stacklevel=2)
