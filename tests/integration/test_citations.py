"""Citations: every work the book names is in references.bib and cited where it is named; CITATION.cff is valid."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from mbt.book.repository import repository_url

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted(ROOT.glob("book/*.md")) + sorted(ROOT.glob("notebooks/*.py"))

# a work, as the text names it -> its key in references.bib (regexes are matched on prose, not code)
NAMED = {
    r"Zhao et al\.": "zhao2026layerwise",
    r"\bKornblith\b|\b[Ll]inear CKA\b": "kornblith2019similarity",
    r"(?i)\blogit[- ]lens\b": "nostalgebraist2020logitlens",
    r"(?i)\btuned lens\b": "belrose2023tuned",
    r"\bLoRA\b": "hu2022lora",
    r"\bPEFT\b": "mangrulkar2022peft",
    r"\bLISA\b": "pan2024lisa",
    r"\bSpectrum\b": "hartford2024spectrum",
    r"\bOWS\b|\bOwLore\b": "li2025ows",
    r"\bILA\b": "shi2025ila",
    r"(?i)\bnnsight\b": "fiottokaufman2025nnsight",
    r"(?i)activation-difference lens": "minder2025narrow",
    r"(?i)equal-step control": "billa2026decomposing",
    r"(?i)convergence gap": "zhou2026convergence",
    r"(?i)data-oblivious": "liu2025spectral",
    r"\bpapermill\b": "papermill",
    r"\bJupyter Book\b": "jupyterbook",
    r"\bjupytext\b": "jupytext",
    r"\bRoy\b": "roy2007effective",
    r"(?i)phase-randomi[sz]ed surrogates": "theiler1992testing",
    r"\bOLMo ?2\b": "olmo2024olmo2",
    r"\bMistral\b": "jiang2023mistral",
    r"\bGSM8K\b": "cobbe2021gsm8k",
    r"\bMMLU\b": "hendrycks2021mmlu",
    r"\bWikiText\b": "merity2017wikitext",
    r"\bHumanEval\b": "chen2021humaneval",
    r"\bMT-Bench\b": "zheng2023mtbench",
    r"\bIFEval\b": "zhou2023ifeval",
    r"\bToxiGen\b": "hartvigsen2022toxigen",
    r"\bHugging Face Transformers\b": "wolf2020transformers",
}

CFF_REQUIRED = ("cff-version", "message", "title", "authors")


def _bib_keys() -> list[str]:
    return re.findall(r"^@\w+\{([^,\s]+),", (ROOT / "references.bib").read_text(), flags=re.MULTILINE)


def _prose(path: Path) -> str:
    """The text a reader reads: Markdown cells of a notebook, without code blocks and inline code."""
    text = path.read_text()
    if path.suffix == ".py":
        heads = re.findall(r"^# %%.*$", text, flags=re.MULTILINE)
        cells = re.split(r"^# %%.*$", text, flags=re.MULTILINE)[1:]
        text = "\n\n".join("\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in c.splitlines())
                           for h, c in zip(heads, cells, strict=True) if "[markdown]" in h)
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.MULTILINE | re.DOTALL)
    return re.sub(r"(?<!\})`[^`\n]*`", "", text)  # inline code, but not the key of a {cite} role


def _cited(text: str) -> list[str]:
    return [key.strip() for keys in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text) for key in keys.split(",")]


def test_references_bib_has_unique_keys_and_the_fields_of_each_entry():
    keys = _bib_keys()
    assert len(keys) == len(set(keys)), "duplicate keys in references.bib"
    entries = re.split(r"^@", (ROOT / "references.bib").read_text(), flags=re.MULTILINE)[1:]
    assert len(entries) == len(keys)
    for entry in entries:
        assert re.search(r"^\s*title\s*=", entry, re.MULTILINE), entry[:60]
        assert re.search(r"^\s*author\s*=", entry, re.MULTILINE), entry[:60]
        assert re.search(r"^\s*(year|url)\s*=", entry, re.MULTILINE), entry[:60]
        for doi in re.findall(r"doi\s*=\s*\{([^}]*)\}", entry):
            assert re.fullmatch(r"10\.\d{4,9}/\S+", doi), doi


def test_every_citation_resolves_and_every_entry_is_cited():
    keys = set(_bib_keys())
    cited = {key for page in PAGES for key in _cited(page.read_text())}
    assert cited - keys == set(), "cited but not in references.bib"
    assert keys - cited == set(), "in references.bib but cited nowhere"
    assert (ROOT / "book" / "references.md").read_text().count("{bibliography}") == 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_named_work_is_cited_on_the_page_that_names_it(page):
    prose = _prose(page)
    cited = set(_cited(page.read_text()))
    missing = [key for pattern, key in NAMED.items() if re.search(pattern, prose) and key not in cited]
    assert missing == [], f"{page.name} names these works without citing them"


def test_the_book_is_configured_for_citations():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["bibtex_bibfiles"] == ["references.bib"]
    toc = (ROOT / "_toc.yml").read_text()
    assert "file: book/references" in toc
    from mbt.book.builder import BOOK_FILES, PROSE

    assert "references.bib" in BOOK_FILES and "references" in PROSE


def test_citation_cff_is_valid_cff_1_2_and_matches_the_project():
    cff = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert all(key in cff for key in CFF_REQUIRED)
    assert str(cff["cff-version"]) == "1.2.0"
    assert cff["message"].strip() and cff["title"].strip()
    assert isinstance(cff["authors"], list) and cff["authors"]
    for person in cff["authors"]:
        assert person.get("name") or person.get("family-names"), person
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert str(cff["version"]) == meta["version"]
    assert cff["license"] == meta["license"]
    assert cff["repository-code"] == repository_url(ROOT)
    assert cff.get("type", "software") in ("software", "dataset")
    for ref in cff.get("references", []):
        assert ref["type"] and ref["title"] and ref["authors"]
        for ident in ref.get("identifiers", []):
            assert ident["type"] in ("doi", "url", "swh", "other")
            if ident["type"] == "doi":
                assert re.fullmatch(r"10\.\d{4,9}/\S+", str(ident["value"]))
