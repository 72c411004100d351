"""Small records in the Hub schemas and offline stand-ins, shared by the data tests."""

from __future__ import annotations

import json
from pathlib import Path

MMLU = [
    {"question": f"What is {i} + 1?", "subject": "elementary_mathematics",
     "choices": [str(i), str(i + 1), str(i + 2), str(i + 3)], "answer": 1}
    for i in range(30)
]

GSM8K = {
    "question": "Tom buys 3 packs of 4 pencils. How many pencils does he have?",
    "answer": "Each pack has 4 pencils, so he has 3*4=<<3*4=12>>12 pencils.\n#### 12",
}

WIKITEXT = [
    {"text": ""},
    {"text": " = Valkyria Chronicles III = \n"},
    {"text": " Senjō no Valkyria 3 : Unrecorded Chronicles is a tactical role @-@ playing game . \n"},
    {"text": " short \n"},
    {"text": " = = Gameplay = = \n"},
    {"text": " The game began development in 2010 , carrying over a large portion of the work . \n"},
    {"text": " \n"},
    {"text": " It met with positive sales in Japan , and was praised by both Japanese and western critics . \n"},
]

WIKITEXT_USABLE = {2, 5, 7}

HUMANEVAL = {
    "task_id": "HumanEval/0",
    "prompt": 'def add(a: int, b: int) -> int:\n    """Add two numbers."""\n',
    "canonical_solution": "    return a + b\n",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    "entry_point": "add",
}

MT_BENCH = {
    "prompt": ["Compose an engaging travel blog post about a recent trip to Hawaii.",
               "Rewrite your previous response. Start every sentence with the letter A."],
    "category": "writing",
    "prompt_id": 81,
}

TOXIGEN = [
    {"text": "asians are trying to take over the world with their karate skills", "target_group": "asian",
     "toxicity_human": 4.0},
    {"text": "ok", "target_group": "asian", "toxicity_human": 1.0},
]

def write_jsonl(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path

def _gsm(i: int) -> dict[str, str]:
    return {"question": f"What is {i} + {i}?", "answer": f"{i}+{i}=<<{i}+{i}={2 * i}>>{2 * i}\n#### {2 * i}"}
