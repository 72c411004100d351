"""Results stores written the way a finished job writes them (store.json, outputs, a job manifest), for tests."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from mbt.pairs import PAIRS
from mbt.paper import manifests, store


def registry_spec(label: str) -> dict[str, Any]:
    """``store.json``'s ``spec`` for a registered pair (what ``mbt batch`` writes), else a custom pair's."""
    spec = PAIRS.get(label)
    if spec is None:
        return {"base": f"/models/{label}/base", "sft": f"/models/{label}/sft", "family": "custom"}
    return {k: v for k, v in dataclasses.asdict(spec).items() if k != "extras"}


def write_store(folder: Path, label: str, *, quick: bool = False, chapter: str = "01_divergence",
                findings: Mapping[str, Mapping[str, Any]] | None = None,
                tables: Mapping[str, pd.DataFrame] | None = None, spec: Mapping[str, Any] | None = None,
                **meta: Any) -> Path:
    """A store folder holding one finished job of ``chapter`` with ``findings`` and ``tables``; returns it."""
    spec = dict(spec) if spec is not None else registry_spec(label)
    store.update_meta(folder, pair=label, quick=quick, spec=spec, **meta)
    staging = manifests.staging_folder(folder, chapter)
    if findings is not None:
        (staging / "records" / f"{chapter}.json").write_text(json.dumps(
            {"chapter": chapter, "pair": label, "findings": {k: dict(v) for k, v in findings.items()}}))
    for name, frame in (tables or {}).items():
        frame.to_csv(staging / "tables" / f"{name}.csv", index=False)
    manifests.publish(folder, chapter, staging, key="test", inputs={"pair": spec})
    return folder
