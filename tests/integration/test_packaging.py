"""Packaging and publishing: one repository URL, installable ranges, a wheel that runs a chapter, no index host.

* The repository URL is written once, in ``pyproject.toml`` (``[project.urls] Repository``); the notebooks'
  install cell, ``_config.yml`` and the docs follow it (:mod:`mbt.book.repository`), and the Pages workflow
  points them at the repository it builds.
* The wheel declares compatible ranges, not exact pins, so installing ``mbt`` into a runtime (Colab) keeps the
  runtime's own CUDA torch; the wheel installed with ``--no-deps`` into a fresh virtual environment (the
  project's packages visible through a ``.pth`` file, so no second torch is downloaded) runs a chapter.
* No tracked file names the package index's host: the workflow installs the CPU torch from PyTorch's wheel
  index first, then ``requirements.txt`` from the default index.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from email.parser import Parser
from pathlib import Path

import jupytext
import pytest
from conftest import REPO
from packaging.requirements import Requirement
from packaging.version import Version

from mbt.book import repository

# What a current Colab runtime ships, as assumed here (they cannot be looked up from this offline test
# machine; update them when Colab moves on): torch 2.8/2.9 with CUDA, transformers 5.x, numpy 2.x.
COLAB = {"torch": ["2.8.0+cu126", "2.9.0+cu126"], "transformers": ["5.0.0", "5.2.0"], "numpy": ["2.0.2"],
         "pandas": ["2.2.2"], "matplotlib": ["3.10.0"], "huggingface-hub": ["1.0.0"], "tokenizers": ["0.22.1"],
         "accelerate": ["1.10.1"], "peft": ["0.17.1"], "datasets": ["4.0.0"]}


def _tracked_files() -> list[Path]:
    try:
        names = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    return [REPO / n for n in names.decode().split("\0") if n and (REPO / n).is_file()]


# ------------------------------------------------------------------------------------------------
# one repository URL
# ------------------------------------------------------------------------------------------------


def test_every_mention_of_the_repository_follows_pyproject() -> None:
    url = repository.repository_url(REPO)
    assert url.startswith("https://github.com/")
    assert repository.mismatches(REPO) == []
    config = (REPO / "_config.yml").read_text()
    assert f"repository:\n  url: {url}\n" in config
    for source in sorted((REPO / "notebooks").glob("[0-9]*.py")):
        for path in (source, source.with_suffix(".ipynb")):
            assert f"git+{url}" in path.read_text(), f"{path.name}: the install cell does not follow pyproject"
    assert f"git clone {url}" in (REPO / "book" / "running_at_scale.md").read_text()
    assert f"git+{url}" in (REPO / "book" / "running_at_scale.md").read_text()


def _copy_followers(dst: Path) -> None:
    shutil.copy(REPO / "pyproject.toml", dst / "pyproject.toml")
    for path in repository.follower_files(REPO):
        target = dst / path.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)


def test_a_disagreeing_mention_is_found_and_set_repository_moves_everything(tmp_path: Path) -> None:
    _copy_followers(tmp_path)
    url = repository.repository_url(tmp_path)
    nb = tmp_path / "notebooks" / "03_probing.py"
    nb.write_text(nb.read_text().replace(f"git+{url}", "git+https://github.com/someone/else"))
    assert repository.mismatches(tmp_path) == ["notebooks/03_probing.py: https://github.com/someone/else"]
    nb.write_text(nb.read_text().replace("git+https://github.com/someone/else", f"git+{url}"))

    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace(url, "https://github.com/fork/mbt"))
    left = repository.mismatches(tmp_path)
    assert any(line.startswith("_config.yml: ") for line in left) and len(left) > 14  # 7 chapters x 2 copies

    pyproject.write_text(pyproject.read_text().replace("https://github.com/fork/mbt", url))
    changed = repository.set_repository(tmp_path, "https://github.com/fork/mbt-book/")
    assert repository.repository_url(tmp_path) == "https://github.com/fork/mbt-book"
    assert repository.mismatches(tmp_path) == [] and len(changed) >= 16
    assert "url: https://github.com/fork/mbt-book\n" in (tmp_path / "_config.yml").read_text()
    for source in sorted((tmp_path / "notebooks").glob("[0-9]*.py")):
        cells = [c.source for c in jupytext.read(source).cells]
        assert cells == [c.source for c in jupytext.read(source.with_suffix(".ipynb")).cells]
        assert 'MBT = "mbt @ git+https://github.com/fork/mbt-book"' in source.read_text()
    with pytest.raises(ValueError, match="not a repository URL"):
        repository.set_repository(tmp_path, "fork/mbt")


def test_the_command_line_checks_and_sets(tmp_path: Path) -> None:
    _copy_followers(tmp_path)
    script = REPO / "mbt" / "book" / "repository.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = [sys.executable, str(script), "--root", str(tmp_path)]  # standard library only: runs before installs
    assert subprocess.run(run, env=env, capture_output=True).returncode == 0
    done = subprocess.run([*run, "--set", "https://github.com/owner/name"], env=env, capture_output=True, text=True)
    assert done.returncode == 0 and "https://github.com/owner/name" in done.stdout
    (tmp_path / "README.md").write_text("git clone https://github.com/other/repo\n")
    assert subprocess.run(run, env=env, capture_output=True).returncode == 1


def test_the_pages_workflow_uses_its_own_repository_and_pytorch_index_for_torch() -> None:
    workflow = (REPO / ".github" / "workflows" / "book.yml").read_text()
    steps = workflow.index("steps:")
    set_url = workflow.index('mbt/book/repository.py --set "https://github.com/${{ github.repository }}"')
    torch = workflow.index("--index-url https://download.pytorch.org/whl/cpu")
    make = workflow.index("run: make book")
    assert steps < set_url < make and torch < make
    assert "grep -E '^torch==' requirements.txt" in workflow  # the pinned version, CPU build
    assert "INDEX_URL" not in workflow.replace("--index-url", "")  # no index set for every install


def test_the_pages_workflow_runs_the_tests_and_fails_the_book_on_a_sphinx_warning() -> None:
    workflow = (REPO / ".github" / "workflows" / "book.yml").read_text()
    assert workflow.index("run: make test") < workflow.index("run: make book")  # a red suite publishes nothing
    assert "BOOKFLAGS=--strict" in workflow
    makefile = (REPO / "Makefile").read_text()
    assert "$(BIN)/mbt book --pair $(PAIR) $(BOOKFLAGS)" in makefile
    from mbt.cli import build_parser

    assert build_parser().parse_args(["book", "--strict"]).strict


# ------------------------------------------------------------------------------------------------
# the package index's host
# ------------------------------------------------------------------------------------------------


def test_no_tracked_file_names_the_package_index_host() -> None:
    hosts = [".".join(("py" + "pi", "org")), ".".join(("files", "python" + "hosted", "org"))]  # spelled apart
    offenders = []
    for path in _tracked_files():
        try:
            text = path.read_text(encoding="utf-8").lower()
        except UnicodeDecodeError:
            continue
        offenders += [f"{path.relative_to(REPO)}: {host}" for host in hosts if host in text]
    assert offenders == []


# ------------------------------------------------------------------------------------------------
# the wheel: ranges, and a chapter from a fresh environment
# ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, built offline from a copy of the sources (no build folders in the checkout)."""
    src = tmp_path_factory.mktemp("src")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "mbt", src / "mbt", ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(out), str(src)], check=True, capture_output=True)
    (path,) = out.glob("mbt-*.whl")
    return path


def _metadata(wheel: Path):  # noqa: ANN202 - an email.message.Message
    with zipfile.ZipFile(wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        return Parser().parsestr(zf.read(name).decode())


def test_the_wheel_declares_ranges_that_accept_a_colab_runtime_and_the_pins(wheel: Path) -> None:
    meta = _metadata(wheel)
    requires = [Requirement(r) for r in meta.get_all("Requires-Dist") if "extra ==" not in r]
    by_name = {r.name.lower(): r for r in requires}
    assert {"torch", "transformers", "numpy"} <= set(by_name)
    for req in requires:
        assert not any(s.operator in ("==", "===") for s in req.specifier), f"{req} pins an exact version"
    for name, versions in COLAB.items():
        for version in versions:
            assert by_name[name].specifier.contains(Version(version), prereleases=True), (
                f"{by_name[name]} refuses {name} {version} (a Colab runtime's)")
    pins = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.strip().lower()] = version.strip()
    for name, req in by_name.items():
        assert req.specifier.contains(Version(pins[name])), f"{req} refuses the pinned {name}=={pins[name]}"
    assert meta["Project-URL"] == f"Repository, {repository.repository_url(REPO)}"


@pytest.mark.slow
def test_the_wheel_installed_into_a_fresh_environment_runs_a_chapter(wheel: Path, save_pair,
                                                                     tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True, capture_output=True)
    # after the install (so pip never sees the project's own mbt): the project's dependencies, not a second
    # torch; a path added by a .pth file is not itself a site directory, so the editable mbt stays out
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    shared = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "_project_dependencies.pth").write_text("\n".join(shared) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "MPLBACKEND")}
    env.update(PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}", JUPYTER_PATH=str(venv / "share" / "jupyter"),
               HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", PYTHONNOUSERSITE="1")
    where = subprocess.run([str(python), "-c", "import mbt, torch; print(mbt.__file__); print(torch.__file__)"],
                           check=True, capture_output=True, text=True, env=env, cwd=tmp_path).stdout.split()
    assert Path(where[0]).is_relative_to(purelib), "mbt comes from the wheel"
    assert not Path(where[1]).is_relative_to(purelib), "torch is the environment's own"
    subprocess.run([str(python), "-m", "ipykernel", "install", "--sys-prefix", "--name", "python3"], check=True,
                   capture_output=True, env=env)

    book = tmp_path / "book-root"  # the book sources; the staging copy lands under it, not in the checkout
    book.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(REPO / name, book / name)
    shutil.copytree(REPO / "book", book / "book", ignore=shutil.ignore_patterns("_*"))
    (book / "notebooks").mkdir()
    shutil.copy(REPO / "notebooks" / "01_divergence.py", book / "notebooks")
    base, sft = save_pair("olmo2")
    done = subprocess.run([str(venv / "bin" / "mbt"), "book", "--base", str(base), "--sft", str(sft), "--quick",
                           "--only", "01", "--no-html", "--param", "datasets=['toy-math']", "--param",
                           "robustness=False"], cwd=book, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "01_divergence        executed" in done.stdout
    executed = jupytext.read(book / "book" / "_executed" / "notebooks" / "01_divergence.ipynb")
    errors = [o for c in executed.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
