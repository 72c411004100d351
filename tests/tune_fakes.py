"""Tiny models and data shared by the LoRA tests."""

from __future__ import annotations


def _write_jsonl(path, records):
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path
