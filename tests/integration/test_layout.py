"""The tests mirror the package, and every public function of the package is used by the package itself.

* Each module ``mbt/<sub>/<m>.py`` has ``tests/<sub>/test_<m>.py`` (or ``test_<m>_<aspect>.py``), unless
  :data:`NO_OWN_TEST` says where its tests are and why.
* A public function or class (no leading underscore, at module level) must be used somewhere in ``mbt/``,
  the notebooks, the benchmarks or the scripts — not only by tests — unless it is part of the documented
  interface for users (:data:`USER_INTERFACE`, each with the reason). Dead code fails here.
"""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import REPO

PACKAGE = REPO / "mbt"

NO_OWN_TEST: dict[str, str] = {
    "book/repository.py": "checks the whole checkout's URLs: tests/integration/test_packaging.py",
    "metrics/_inputs.py": "private input validation, exercised by every metric's tests in tests/metrics/",
    "toy/quality.py": "the quality checks of a build: tests/toy/test_builder.py and test_ladder.py build and check",
    "toy/recipe.py": "the toy recipe runs inside builds: tests/toy/test_builder.py",
    "paper/manifests.py": "job manifests are written and checked by the batch runner: tests/book/test_jobs_store.py",
    "paper/intervals.py": "the intervals behind every verdict: tests/paper/test_verdicts.py",
}
"""Modules without a mirrored test file, and where their tests are."""

USER_INTERFACE: dict[str, str] = {
    "matrix_entropy": "a metric of the public API (mbt.metrics); analyze uses its two specialisations",
    "singular_values": "a spectrum helper of the public API (mbt.metrics) beside gram_eigenvalues",
    "swapped": "the public context manager of mbt.swap; swap_sweep uses the underlying swap",
    "collect_layers": "collects raw per-layer states for a user's own analysis (mbt.trace)",
    "lens_logits": "per-layer lens logits for a user's own probing (mbt.probe)",
    "locked_update": "read-modify-write of a shared table under a lock, for scripts (mbt.results)",
    "toxigen_accuracy": "scores Appendix A's ToxiGen task on a real pair (mbt.evaluate)",
    "find_build": "finds an existing toy build without building (mbt.toy)",
    "is_valid": "checks a toy build folder (mbt.toy)",
    "bootstrap_interval": "the texts interval of the verdict engine, for custom claims (mbt.paper.verdicts)",
    "equivalence": "the two one-sided tests rule for a 'negligible' claim, for custom claims (mbt.paper.verdicts)",
    "read_records": "all findings of a records folder at once, for a reader's own scripts (mbt.paper)",
    "prompt_and_completion": "the prompt/answer split of a formatted record, for custom scoring (mbt.formats)",
    "setup": "the hook Sphinx calls to load mbt.book.sphinx_ext, named in _config.yml's extra_extensions",
}
"""Public names used only by readers of the library, never by mbt itself, and why they exist."""


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py")


def test_every_module_has_a_mirrored_test_file_or_a_reason():
    missing = []
    for module in _modules():
        rel = module.relative_to(PACKAGE)
        folder = REPO / "tests" / rel.parent
        found = list(folder.glob(f"test_{module.stem}.py")) + list(folder.glob(f"test_{module.stem}_*.py"))
        if not found and rel.as_posix() not in NO_OWN_TEST:
            missing.append(f"mbt/{rel.as_posix()} -> tests/{rel.parent.as_posix()}/test_{module.stem}.py".replace(
                "/./", "/"))
    assert not missing, "modules without a mirrored test file (or a reason in NO_OWN_TEST): " + "; ".join(missing)
    stale = [m for m in NO_OWN_TEST if not (PACKAGE / m).exists()]
    assert not stale, f"NO_OWN_TEST names modules that no longer exist: {stale}"


def _used_names() -> set[str]:
    """Every name read, attribute accessed or string constant outside ``__all__`` in the package and its users."""
    sources = [*PACKAGE.rglob("*.py"), *(REPO / "notebooks").glob("*.py"), *(REPO / "benchmarks").glob("*.py"),
               *(REPO / "scripts").glob("*.py")]
    used: set[str] = set()
    for path in sources:
        tree = ast.parse(path.read_text())
        exported = {id(c) for node in tree.body if isinstance(node, ast.Assign)
                    and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
                    for c in ast.walk(node.value)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Name):
                used.add(node.id)
            elif isinstance(node, ast.Attribute):
                used.add(node.attr)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in exported:
                used.add(node.value)  # lazy tables: generators named in a registry, lazy imports
    return used


def _public_definitions() -> dict[str, str]:
    out = {}
    for module in _modules():
        for node in ast.parse(module.read_text()).body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                out[node.name] = f"mbt/{module.relative_to(PACKAGE).as_posix()}"
    return out


def test_no_public_function_is_used_only_by_tests():
    used = _used_names()
    unused = {name: where for name, where in _public_definitions().items()
              if name not in used and name not in USER_INTERFACE}
    assert not unused, f"public names that nothing but tests uses (remove them, or document why): {unused}"
    stale = [n for n in USER_INTERFACE if n not in _public_definitions()]
    assert not stale, f"USER_INTERFACE names that are no longer defined: {stale}"


def test_the_dead_code_check_finds_a_planted_function(tmp_path):
    planted = "def never_called():\n    return 1\n"
    tree = ast.parse(planted)
    names = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert names == ["never_called"] and "never_called" not in _used_names()
