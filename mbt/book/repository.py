r"""The repository URL in one place, and the files that follow it.

The URL lives in ``pyproject.toml`` (``[project.urls] Repository``). Every other mention follows it: the
install line of each chapter notebook (``MBT = "mbt @ git+<url>"``, in the jupytext source and its ``.ipynb``
copy), ``_config.yml``'s ``repository: url:`` (the book's repository, issues and Colab buttons) and its
``thebe_config: repository_url:`` (live code, off, but written into every page), ``CITATION.cff``'s
``repository-code:``, and the ``git clone <url>`` / ``git+<url>`` commands of the README and the prose chapters.

:func:`mismatches` lists every mention that differs from the project metadata; :func:`set_repository`
rewrites all of them, the metadata included. The book workflow runs it with the repository it builds
(``python mbt/book/repository.py --set https://github.com/${{ github.repository }}``), so a fork's Pages
and Colab buttons point at the fork. This file uses the standard library only, so it runs before the
project's dependencies are installed.
"""

from __future__ import annotations

import argparse
import re
import sys
import tomllib
from pathlib import Path

__all__ = ["FOLLOWERS", "follower_files", "mismatches", "repository_url", "set_repository"]

FOLLOWERS: tuple[str, ...] = ("_config.yml", "CITATION.cff", "README.md", "book/*.md", "notebooks/*.py",
                               "notebooks/*.ipynb")
"""Glob patterns (relative to the repository root) of the files that mention the repository URL."""

_MENTIONS = (
    re.compile(r"git\+(https?://[^\s\"'`)\\]+)"),  # pip install "mbt @ git+<url>"
    re.compile(r"git clone (https?://[^\s\"'`)\\]+)"),
    re.compile(r"^repository:\s*\n\s+url:\s*(\S+)", re.MULTILINE),  # _config.yml
    re.compile(r"^\s+repository_url:\s*[\"']?([^\s\"']+)", re.MULTILINE),  # _config.yml's thebe_config
    re.compile(r"^repository-code:\s*[\"']?([^\s\"']+)", re.MULTILINE),  # CITATION.cff
)


def repository_url(root: str | Path) -> str:
    """The repository URL of the project metadata (``[project.urls] Repository`` of ``pyproject.toml``).

    Args:
        root: The repository root.

    Raises:
        KeyError: ``pyproject.toml`` has no ``[project.urls] Repository``.
    """
    meta = tomllib.loads((Path(root) / "pyproject.toml").read_text(encoding="utf-8"))
    try:
        return str(meta["project"]["urls"]["Repository"]).rstrip("/")
    except KeyError:
        raise KeyError("pyproject.toml has no [project.urls] Repository") from None


def follower_files(root: str | Path) -> list[Path]:
    """The files matching :data:`FOLLOWERS` under ``root`` (sorted; staging folders left out)."""
    root = Path(root)
    files = {p for pattern in FOLLOWERS for p in root.glob(pattern) if p.is_file()}
    return sorted(p for p in files if not any(part.startswith("_") for part in p.relative_to(root).parts[:-1]))


def mentions(text: str) -> list[str]:
    """Every repository URL that ``text`` mentions in an install, clone or ``repository:`` line."""
    return [m.group(1).rstrip("/") for pattern in _MENTIONS for m in pattern.finditer(text)]


def mismatches(root: str | Path) -> list[str]:
    """``"<file>: <url>"`` for every mention that differs from :func:`repository_url` (empty: all agree)."""
    root = Path(root)
    url = repository_url(root)
    return [f"{path.relative_to(root).as_posix()}: {found}" for path in follower_files(root)
            for found in mentions(path.read_text(encoding="utf-8")) if found != url]


def set_repository(root: str | Path, url: str) -> list[Path]:
    """Point the project metadata and every mention at ``url``.

    Args:
        root: The repository root.
        url: The new repository URL, e.g. ``https://github.com/owner/name``.

    Returns:
        The files that changed.

    Raises:
        ValueError: ``url`` is not an ``http(s)`` URL, or mentions still disagree afterwards (a mention of
            a URL other than the metadata's, which this function does not guess at).
    """
    root = Path(root)
    url = url.strip().rstrip("/")
    if not re.fullmatch(r"https?://[^\s\"'`)\\]+", url):
        raise ValueError(f"not a repository URL: {url!r}")
    old = repository_url(root)
    changed = []
    for path in [root / "pyproject.toml", *follower_files(root)]:
        text = path.read_text(encoding="utf-8")
        new = text.replace(old, url) if old != url else text
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    left = mismatches(root)
    if left:
        raise ValueError("mentions that do not follow pyproject.toml: " + "; ".join(left))
    return changed


def main(argv: list[str] | None = None) -> int:
    """``python mbt/book/repository.py [--root R] [--set URL]``: check (exit 1 on a mismatch) or rewrite."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=".", help="repository root (default: the working directory)")
    parser.add_argument("--set", dest="url", default=None, help="point everything at this repository URL")
    args = parser.parse_args(argv)
    if args.url:
        changed = set_repository(args.root, args.url)
        print(f"repository: {repository_url(args.root)} ({len(changed)} files changed)")
        return 0
    left = mismatches(args.root)
    for line in left:
        print(line)
    print(f"repository: {repository_url(args.root)}" + ("" if not left else f"; {len(left)} mismatches"))
    return 1 if left else 0


if __name__ == "__main__":
    sys.exit(main())
