"""The package's layers: no upward import, no cycle, imports between mbt modules at the top of the file.

Each module of ``mbt`` belongs to one layer; a module may import from its own layer or below, never above,
and the import graph has no cycle. Foundation modules (layer 0) import no other ``mbt`` module outside
their own package. The command line (``mbt/cli.py``) and the package root (``mbt/__init__.py``) import
lazily on purpose (``mbt --help`` and ``import mbt`` stay fast); every other module imports ``mbt``
modules at the top of the file, so its dependencies are visible where a reader looks for them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import REPO

PACKAGE = REPO / "mbt"

LAYERS: dict[str, int] = {
    # 0 foundation: imports no other mbt module
    "mbt.results": 0, "mbt.segments": 0, "mbt.formats": 0, "mbt.stats": 0, "mbt.cpu": 0, "mbt.metrics": 0,
    "mbt.checks": 0,
    # 1 data and models (plots draws the segments' middle band and names the intrinsic metrics, so it sits
    # here; the toy tasks' generators are data, read by mbt.data through its registry)
    "mbt.data": 1, "mbt.trace": 1, "mbt.evaluate": 1, "mbt.train": 1, "mbt.loading": 1, "mbt.plots": 1,
    "mbt.toy.corpus": 1, "mbt.workers": 1,
    # 2 toy builder
    "mbt.toy": 2,
    # 3 pairs, and the identity of inputs, models, pairs and calls (below every analysis that keys a cache)
    "mbt.pairs": 3, "mbt.identity": 3,
    # 4 analyses
    "mbt.analysis": 4, "mbt.probe": 4, "mbt.weights": 4, "mbt.swap": 4, "mbt.correlate": 4, "mbt.select": 4,
    "mbt.tune": 4, "mbt.diffing": 4, "mbt.equal_step": 4, "mbt.knowledge": 4,
    # 5 reproduction (no models)
    "mbt.paper": 5,
    # 6 book
    "mbt.book": 6,
    # 7 face
    "mbt.cli": 7,
}
LAZY_OK = {"mbt.cli", "mbt"}


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _layer(module: str) -> int:
    best = max((k for k in LAYERS if module == k or module.startswith(k + ".")), key=len, default=None)
    if best is None:
        raise AssertionError(f"module {module} has no layer: add it to LAYERS in {Path(__file__).name}")
    return LAYERS[best]


def _resolve(name: str) -> str:
    """The mbt module an imported name refers to (``mbt.tune.sweeps.sweep`` -> ``mbt.tune.sweeps``)."""
    while name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _imports(path: Path) -> list[tuple[str, int, bool]]:
    """``(imported mbt module, line, at module level)`` for every import of an mbt module in a file."""
    tree = ast.parse(path.read_text())
    top = {id(node) for node in tree.body}
    top |= {id(n) for node in tree.body if isinstance(node, ast.If) for n in node.body}  # TYPE_CHECKING blocks
    out = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name == "mbt" or name.startswith("mbt."):
                out.append((_resolve(name), node.lineno, id(node) in top))
    return out


GRAPH = {mod: sorted({m for m, _, _ in _imports(path) if m != mod}) for mod, path in MODULES.items()}


def test_every_module_has_a_layer():
    for module in MODULES:
        if module != "mbt":
            _layer(module)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m != "mbt"))
def test_no_upward_import(module):
    mine = _layer(module)
    for target, line, _ in _imports(MODULES[module]):
        if target == "mbt":
            continue
        assert _layer(target) <= mine, (
            f"{module} (layer {mine}) imports {target} (layer {_layer(target)}) at line {line}: upward import")
        if mine == 0:
            own = module.split(".")[:2]
            assert target.split(".")[:2] == own, f"foundation module {module} imports {target} (line {line})"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m not in LAZY_OK))
def test_mbt_imports_at_the_top(module):
    hidden = [(t, line) for t, line, at_top in _imports(MODULES[module]) if not at_top]
    assert not hidden, f"{module} imports mbt modules inside functions: {hidden}"


def test_no_import_cycle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(mod: str) -> None:
        state[mod] = 1
        stack.append(mod)
        for nxt in GRAPH.get(mod, []):
            if nxt == "mbt" or nxt not in GRAPH:
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[mod] = 2

    for mod in GRAPH:
        if state.get(mod) is None:
            visit(mod)


def test_the_checker_catches_an_upward_import(tmp_path):
    """A test that cannot fail is a defect: a planted upward import and a planted cycle are both found."""
    bad = tmp_path / "bad.py"
    bad.write_text("from mbt.book import build\n\ndef f():\n    from mbt import cli\n")
    found = _imports(bad)
    assert ("mbt.book", 1, True) in found and ("mbt.cli", 4, False) in found
    assert _layer("mbt.book") > _layer("mbt.segments")
