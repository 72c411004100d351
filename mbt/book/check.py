r"""The built book, checked as a reader sees it: ``make check-book`` (``python -m mbt.book.check``).

Two passes over every page of ``_build/html``:

1. **Static** (:func:`check_static`, the standard library and Pillow only): every link and asset inside
   the book resolves to a file (and a ``#fragment`` to an element of that page); no page loads anything
   from another host; every image file is non-empty and not blank (one colour); every figure in a chapter
   output has alt text; no rendered output shows a warning with a file path (:func:`path_warnings`);
   no live-code (thebe/Binder) configuration points anywhere but the book's own repository.
2. **Browser** (:func:`check_browser`): headless Chromium, driven over the DevTools protocol with
   ``websocket-client``, opens every page — served on ``127.0.0.1`` by a server of this process — in light
   and in dark mode and fails on: a JavaScript error, a request to any other host (blocked, then reported),
   an image that does not load, TeX left untypeset after MathJax ran (:func:`untypeset_tex`), a MathJax
   error, a theme that does not switch. It writes a screenshot per page and theme
   (``<out>/<page>-<theme>.png``) for a human to look at.

Every problem is a :class:`Problem` naming the page; :func:`main` prints them and exits 1 when there is one.
Chromium is looked up as ``$CHROMIUM``, ``chromium``, ``chromium-browser``, ``google-chrome`` or
``google-chrome-stable`` (:func:`find_chromium`); nothing is installed.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import functools
import http.server
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from mbt.book.repository import repository_url

__all__ = [
    "CHROMIUM_HELP",
    "THEMES",
    "Page",
    "Problem",
    "book_pages",
    "check_browser",
    "check_static",
    "find_chromium",
    "image_is_blank",
    "main",
    "parse_page",
    "path_warnings",
    "untypeset_tex",
]

THEMES: tuple[str, ...] = ("light", "dark")
"""The colour modes every page is opened in."""

VIEWPORT: tuple[int, int] = (1280, 900)
"""The browser window, CSS pixels: a laptop screen."""

CHROMIUM_HELP = ("Chromium was not found. On Debian or Ubuntu: `sudo apt-get install chromium` (Ubuntu's "
                 "`chromium-browser` or Google Chrome work too); or point $CHROMIUM at a Chrome/Chromium binary. "
                 "`--no-browser` runs the static checks alone.")


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a built page.

    Attributes:
        page: The page, relative to the HTML folder (``notebooks/01_divergence.html``).
        kind: What is wrong (``"broken link"``, ``"external request"``, ``"path warning"``, ...).
        detail: Where and what exactly.
        theme: The colour mode the browser found it in (``""`` for a static problem).
    """

    page: str
    kind: str
    detail: str
    theme: str = ""

    def __str__(self) -> str:
        where = f"{self.page} [{self.theme}]" if self.theme else self.page
        return f"{where}: {self.kind}: {self.detail}"


# ---------------------------------------------------------------------------------------------- pure text checks

_PATH_WARNING_PATTERNS = (
    re.compile(r"[\w./\\-]*\.py:\d+: \w*(?:Warning|Error)\b"),  # "…/runtime.py:145: UserWarning"
    re.compile(r"[/\\](?:site|dist)-packages[/\\]"),  # a file of an installed package
)


def path_warnings(text: str) -> list[str]:
    """The lines of ``text`` that show a warning (or error) with a file path, as Python prints them.

    A line counts when it names a ``file.py:<line>: <Something>Warning`` (or ``Error``), or a path inside
    ``site-packages``/``dist-packages``: what a reader of the book should never see, since it is about the
    machine that built the book, not about the result.

    Args:
        text: Rendered output text (one or more lines).

    Returns:
        The offending lines, stripped, in order.
    """
    return [line.strip() for line in text.splitlines() if any(p.search(line) for p in _PATH_WARNING_PATTERNS)]


_TEX = re.compile(
    r"\$\$|\\\(|\\\)|\\\[|\\\]"  # display/inline delimiters MathJax should have consumed
    r"|\\(?:frac|tfrac|dfrac|mathrm|mathbb|mathbf|mathcal|operatorname|begin|end|left|right|sum|prod|int|sqrt"
    r"|lVert|rVert|lvert|rvert|lambda|sigma|alpha|beta|mu|kappa|Delta|cdot|qquad|quad|text|textstyle|top"
    r"|le|ge|leq|geq|in|ldots|dots|hat|bar|tilde|overline|underline|log|exp|min|max)(?![A-Za-z])"
    r"|\$(?=[^$\s])[^$\n]{0,200}?\\[A-Za-z]+[^$\n]{0,200}?\$"  # $...\command...$ that was not typeset
)


def untypeset_tex(text: str) -> list[str]:
    """TeX fragments in ``text``: math delimiters or commands that MathJax should have typeset.

    Run on a page's visible text *after* MathJax ran, with code blocks, scripts and MathJax's own output
    removed; anything found here is shown to the reader as raw TeX.

    Args:
        text: Visible text of a page.

    Returns:
        Each fragment with a little context, in order.
    """
    spans: list[list[int]] = []
    for m in _TEX.finditer(text):
        if spans and m.start() - spans[-1][1] < 60:  # one fragment: "$$ \frac{a}{b} $$" is reported once
            spans[-1][1] = m.end()
        else:
            spans.append([m.start(), m.end()])
    return [" ".join(text[max(0, a - 30):min(len(text), b + 30)].split()) for a, b in spans]


def image_is_blank(path: str | Path) -> bool:
    """``True`` when an image file is empty, cannot be decoded, has no pixels, or is one colour throughout.

    SVG files are only checked for being non-empty (they are not rasterised here).

    Args:
        path: A PNG, JPEG, GIF, WebP or SVG file.
    """
    path = Path(path)
    if not path.is_file() or path.stat().st_size == 0:
        return True
    if path.suffix.lower() == ".svg":
        return "<svg" not in path.read_text(encoding="utf-8", errors="replace")
    from PIL import Image  # matplotlib's own dependency

    try:
        with Image.open(path) as image:
            image.load()
            if image.width == 0 or image.height == 0:
                return True
            extrema = image.convert("RGBA").getextrema()
    except (OSError, ValueError):
        return True
    return all(low == high for low, high in extrema)


# ---------------------------------------------------------------------------------------------- static pass

_RESOURCE_TAGS = {("img", "src"), ("script", "src"), ("iframe", "src"), ("source", "src"), ("video", "src"),
                  ("audio", "src"), ("embed", "src"), ("track", "src"), ("video", "poster"), ("object", "data"),
                  ("input", "src")}
"""Attributes whose URL the browser fetches as soon as the page loads."""

_RESOURCE_RELS = {"stylesheet", "preload", "modulepreload", "icon", "shortcut", "apple-touch-icon", "manifest",
                  "prefetch", "prerender", "dns-prefetch", "preconnect"}
"""``<link rel=…>`` values that make the browser contact the linked URL."""

_SKIPPED_SCHEMES = ("mailto:", "javascript:", "data:", "blob:", "tel:", "about:")


@dataclass
class Page:
    """What :func:`parse_page` found in one HTML page.

    Attributes:
        links: ``(tag, attribute, url, is_resource)`` for every URL in the page.
        ids: Every ``id`` (and ``<a name>``) in the page: the targets of ``#fragment`` links.
        outputs: The text of every chapter output (MyST-NB's ``cell_output`` blocks).
        figures: ``(src, alt)`` of every ``<img>`` inside a chapter output.
        scripts: ``(type, text)`` of every inline ``<script>``.
    """

    links: list[tuple[str, str, str, bool]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    outputs: list[str] = field(default_factory=list)
    figures: list[tuple[str, str | None]] = field(default_factory=list)
    scripts: list[tuple[str, str]] = field(default_factory=list)


class _Parser(HTMLParser):
    _VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.page = Page()
        self._stack: list[tuple[str, bool]] = []  # (tag, opens a cell output)
        self._output: list[str] | None = None
        self._output_depth = 0
        self._script: tuple[str, list[str]] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v or "") for k, v in attrs}
        if "id" in a:
            self.page.ids.add(a["id"])
        if tag == "a" and "name" in a:
            self.page.ids.add(a["name"])
        for key in ("href", "src", "poster", "data", "action"):
            if key in a and a[key].strip():
                resource = (tag, key) in _RESOURCE_TAGS or (
                    tag == "link" and key == "href" and bool(set(a.get("rel", "").lower().split()) & _RESOURCE_RELS))
                self.page.links.append((tag, key, a[key].strip(), resource))
        if "srcset" in a:
            for part in a["srcset"].split(","):
                if part.strip():
                    self.page.links.append((tag, "srcset", part.strip().split()[0], True))
        if tag == "img" and self._output is not None:
            self.page.figures.append((a.get("src", ""), a.get("alt")))
        if tag == "script" and "src" not in a:
            self._script = (a.get("type", ""), [])
        if tag in self._VOID:
            return
        opens = "cell_output" in a.get("class", "").split() and self._output is None
        if opens:
            self._output, self._output_depth = [], len(self._stack)
        self._stack.append((tag, opens))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in self._VOID and self._stack and self._stack[-1][0] == tag:
            self._stack.pop()

    def handle_endtag(self, tag: str) -> None:
        if tag == "script" and self._script is not None:
            self.page.scripts.append((self._script[0], "".join(self._script[1])))
            self._script = None
        if tag in self._VOID:
            return
        # pop to the matching open tag (HTML in the wild is not always well nested)
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                closed = self._stack[i:]
                del self._stack[i:]
                if any(opens for _, opens in closed) and self._output is not None:
                    self.page.outputs.append("".join(self._output))
                    self._output = None
                return

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._script[1].append(data)
        elif self._output is not None:
            self._output.append(data)

    def close(self) -> None:
        super().close()
        if self._output is not None:
            self.page.outputs.append("".join(self._output))
            self._output = None


def parse_page(html: str) -> Page:
    """Links, ids, chapter outputs, figures and inline scripts of one HTML page (see :class:`Page`)."""
    parser = _Parser()
    parser.feed(html)
    parser.close()
    return parser.page


def _describes(alt: str | None, src: str) -> bool:
    """``alt`` is a description, not empty and not the file name (what Sphinx writes when there is none)."""
    text = (alt or "").strip()
    if not text:
        return False
    name = src.rsplit("/", 1)[-1]
    return text not in (src, name) and not text.endswith("/" + name)


def book_pages(html_dir: str | Path) -> list[str]:
    """Every built page: the ``*.html`` files under ``html_dir``, outside Sphinx's ``_``-folders; relative, sorted."""
    root = Path(html_dir)
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*.html")
                  if not any(part.startswith("_") for part in p.relative_to(root).parts[:-1]))


def _is_external(url: str) -> bool:
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", url)) or url.startswith("//")


def _same_repository(found: str, repository: str | None) -> bool:
    """``found`` (``owner/name`` or a URL) names the repository ``repository`` (a URL)."""
    if not repository:
        return False
    want = urllib.parse.urlsplit(repository.rstrip("/").lower()).path.strip("/").removesuffix(".git")
    have = found.rstrip("/").lower()
    have = urllib.parse.urlsplit(have).path.strip("/") if "://" in have or have.startswith("//") else have
    return have.removesuffix(".git") == want


def _live_code_problems(page: str, parsed: Page, repository: str | None) -> list[Problem]:
    """Thebe/Binder configurations or links that point at a repository other than ``repository``."""
    problems = []
    for kind, text in parsed.scripts:
        if "thebe" not in kind.lower():
            continue
        found = re.findall(r"\brepo\s*:\s*[\"']([^\"']+)[\"']", text)
        found += re.findall(r"repository_url\W+((?:https?:)?//[^\s\"']+)", text)
        for repo in found:
            if not _same_repository(repo, repository):
                problems.append(Problem(page, "live-code configuration", f"thebe points at {repo}"))
    for _, _, url, _ in parsed.links:
        m = re.search(r"mybinder\.org/v2/gh/([\w.-]+/[\w.-]+)", url)
        if m and not _same_repository(m.group(1), repository):
            problems.append(Problem(page, "live-code configuration", f"Binder link to {m.group(1)}"))
    return problems


def check_static(html_dir: str | Path, *, repository: str | None = None,
                 pages: Sequence[str] | None = None) -> list[Problem]:
    """Check every built page without a browser (see the module docstring, pass 1).

    Args:
        html_dir: The built book (``_build/html``).
        repository: The book's own repository URL; a live-code configuration that points elsewhere is a
            problem (``None``: any live-code configuration is one).
        pages: Pages to check (default :func:`book_pages`); links from them into other pages are still
            resolved against the whole folder.

    Returns:
        Every problem found, page by page.

    Raises:
        FileNotFoundError: ``html_dir`` is not a folder.
    """
    root = Path(html_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder (build the book first: make book)")
    pages = list(book_pages(root) if pages is None else pages)
    if not pages:
        return [Problem(str(root), "no pages", "the folder holds no HTML page")]
    parsed: dict[str, Page] = {}

    def get(rel: str) -> Page | None:
        if rel not in parsed:
            path = root / rel
            parsed[rel] = parse_page(path.read_text(encoding="utf-8", errors="replace")) if path.is_file() else Page()
        return parsed[rel]

    blank_cache: dict[Path, bool] = {}
    problems: list[Problem] = []
    for page in pages:
        info = get(page)
        assert info is not None
        here = (root / page).parent
        for tag, attr, url, resource in info.links:
            if url.startswith(_SKIPPED_SCHEMES) or (tag == "form" and attr == "action"):
                continue
            if _is_external(url):
                if resource:
                    detail = f"<{tag} {attr}={url!r}> loads from another host"
                    problems.append(Problem(page, "external request", detail))
                continue
            parts = urllib.parse.urlsplit(url)
            if not parts.path:  # "#fragment" in this page
                if parts.fragment and parts.fragment not in info.ids:
                    problems.append(Problem(page, "broken link", f"<{tag} {attr}={url!r}>: no element with that id"))
                continue
            target = (root / parts.path.lstrip("/")) if parts.path.startswith("/") else here / parts.path
            target = Path(os.path.normpath(urllib.parse.unquote(str(target))))
            if target.is_dir():
                target = target / "index.html"
            if root.resolve() not in target.resolve().parents and target.resolve() != root.resolve():
                problems.append(Problem(page, "broken link", f"<{tag} {attr}={url!r}> points outside the book"))
                continue
            if not target.is_file():
                problems.append(Problem(page, "broken link" if tag == "a" else "missing file",
                                        f"<{tag} {attr}={url!r}>: no such file in the book"))
                continue
            if parts.fragment and target.suffix == ".html":
                other = get(target.resolve().relative_to(root.resolve()).as_posix())
                if other is not None and parts.fragment not in other.ids:
                    problems.append(Problem(page, "broken link", f"<{tag} {attr}={url!r}>: no element with that id"))
            if tag == "img" and target.suffix.lower() in {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}:
                if target not in blank_cache:
                    blank_cache[target] = image_is_blank(target)
                if blank_cache[target]:
                    problems.append(Problem(page, "empty figure", f"{url} is empty or one colour throughout"))
        for src, alt in info.figures:
            if not _describes(alt, src):
                problems.append(Problem(page, "figure without alt text", src or "<img> without src"))
        for text in info.outputs:
            for line in path_warnings(text):
                problems.append(Problem(page, "path warning", line[:300]))
        problems += _live_code_problems(page, info, repository)
    return problems


# ---------------------------------------------------------------------------------------------- browser pass

def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium (or Chrome) binary to use: ``explicit``, else ``$CHROMIUM``, else the first on ``PATH``."""
    for candidate in (explicit, os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome",
                      "google-chrome-stable"):
        if candidate:
            found = shutil.which(candidate)
            if found:
                return found
    return None


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        pass


@contextlib.contextmanager
def _serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on ``127.0.0.1`` (a free port) for the duration; yields the base URL."""
    handler = functools.partial(_Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _DevTools:
    """A minimal DevTools-protocol client over one websocket: commands with replies, events to handlers."""

    def __init__(self, url: str, timeout: float = 30.0) -> None:
        import websocket  # websocket-client, installed with Jupyter

        self._ws = websocket.create_connection(url, timeout=timeout, suppress_origin=True)
        self._next = 0
        self._replies: dict[int, dict[str, Any]] = {}
        self.events: list[dict[str, Any]] = []
        self.handlers: dict[str, Callable[[dict[str, Any]], None]] = {}
        self.timeout = timeout

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()

    def _dispatch(self, message: dict[str, Any]) -> None:
        handler = self.handlers.get(message.get("method", ""))
        if handler is not None:
            handler(message)
        else:
            self.events.append(message)

    def send(self, method: str, params: dict[str, Any] | None = None, *, session: str | None = None,
             timeout: float | None = None) -> dict[str, Any]:
        """Send a command and wait for its reply (events arriving meanwhile go to handlers or :attr:`events`).

        A handler may send commands itself: replies are matched by id, whichever call reads them.
        """
        self._next += 1
        ident = self._next
        message: dict[str, Any] = {"id": ident, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        self._ws.send(json.dumps(message))
        deadline = time.monotonic() + (timeout or self.timeout)
        while ident not in self._replies:
            self._ws.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                incoming = json.loads(self._ws.recv())
            except Exception as exc:  # websocket timeouts and closed sockets
                raise TimeoutError(f"DevTools: no reply to {method} ({type(exc).__name__}: {exc})") from exc
            if "id" in incoming:
                self._replies[incoming["id"]] = incoming
            else:
                self._dispatch(incoming)
        reply = self._replies.pop(ident)
        if "error" in reply:
            raise RuntimeError(f"DevTools: {method} failed: {reply['error']}")
        return reply.get("result", {})

    def pump(self, seconds: float) -> None:
        """Handle the events that arrive during ``seconds``."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._ws.settimeout(left)
            try:
                incoming = json.loads(self._ws.recv())
            except Exception:  # a timeout: nothing more arrived
                return
            if "id" in incoming:
                self._replies[incoming["id"]] = incoming
            else:
                self._dispatch(incoming)


@contextlib.contextmanager
def _chromium(binary: str, *, width: int = VIEWPORT[0], height: int = VIEWPORT[1]) -> Iterator[_DevTools]:
    """Start headless Chromium with a throw-away profile; yields a client connected to the browser."""
    with tempfile.TemporaryDirectory(prefix="mbt-chromium-") as profile:
        args = [binary, "--headless=new", "--remote-debugging-port=0", f"--user-data-dir={profile}",
                "--no-first-run", "--no-default-browser-check", "--disable-gpu", "--disable-extensions",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-default-apps", "--metrics-recording-only", "--hide-scrollbars", "--mute-audio",
                "--force-device-scale-factor=1", f"--window-size={width},{height}", "about:blank"]
        if hasattr(os, "geteuid") and os.geteuid() == 0:
            args.insert(1, "--no-sandbox")  # Chromium refuses to run as root with its sandbox
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = Path(profile) / "DevToolsActivePort"
            deadline = time.monotonic() + 30
            while not (port_file.is_file() and len(port_file.read_text().splitlines()) >= 2):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{binary} did not start (exit {proc.poll()})")
                time.sleep(0.1)
            port, path = port_file.read_text().splitlines()[:2]
            client = _DevTools(f"ws://127.0.0.1:{port}{path}")
            try:
                yield client
            finally:
                client.close()
        finally:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


_VISIBLE_TEXT_JS = """(() => {
  const clone = document.body.cloneNode(true);
  // typeset formulas (MathJax's own output) and code go; a formula MathJax left alone keeps its raw TeX
  clone.querySelectorAll('pre, code, script, style, noscript, textarea, svg, math, mjx-container, mjx-assistive-mml,'
    + ' .MathJax, .MathJax_Preview, .MathJax_Display, .headerlink').forEach(e => e.remove());
  return clone.textContent;
})()"""

_IMAGES_JS = """(async () => {
  const images = [...document.images];
  images.forEach(i => { i.loading = 'eager'; });
  await Promise.all(images.map(i => i.complete ? 0
    : new Promise(r => { i.onload = i.onerror = r; setTimeout(r, 10000); })));
  return images.map(i => ({src: i.getAttribute('src') || '', complete: i.complete, width: i.naturalWidth,
                           height: i.naturalHeight}));
})()"""

_MATHJAX_JS = """(async () => {
  const t0 = Date.now();
  while (!(window.MathJax && MathJax.startup && MathJax.startup.promise) && Date.now() - t0 < 3000) {
    await new Promise(r => setTimeout(r, 50));
  }
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  return {mathjax: !!(window.MathJax && MathJax.startup), errors: document.querySelectorAll('mjx-merror').length,
          theme: document.documentElement.dataset.theme || '', mode: document.documentElement.dataset.mode || ''};
})()"""


def _slug(page: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", page.removesuffix(".html"))


def check_browser(html_dir: str | Path, out: str | Path, *, chromium: str | None = None,
                  themes: Sequence[str] = THEMES, pages: Sequence[str] | None = None,
                  max_height: int = 16000, log: Callable[[str], None] = print) -> list[Problem]:
    """Open every page in headless Chromium in each theme; report problems and write screenshots.

    The pages are served from ``html_dir`` on ``127.0.0.1``; every request to another host is blocked and
    reported. Per page and theme: the colour mode is set (the theme's stored choice and the
    ``prefers-color-scheme`` media feature), the page loads, MathJax finishes, images load; then JavaScript
    errors, failed images, MathJax errors, untypeset TeX and the theme actually shown are checked, and a
    screenshot of the page (up to ``max_height`` pixels tall) goes to ``<out>/<page>-<theme>.png``.

    Args:
        html_dir: The built book.
        out: Folder for the screenshots (created).
        chromium: The browser binary (default :func:`find_chromium`).
        themes: Colour modes (``"light"``, ``"dark"``).
        pages: Pages to open (default :func:`book_pages`).
        max_height: Screenshots are cut at this height.
        log: Progress messages.

    Returns:
        Every problem found.

    Raises:
        FileNotFoundError: No Chromium (the message says how to get one), or ``html_dir`` is not a folder.
        ValueError: An unknown theme.
    """
    root = Path(html_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"{root} is not a folder (build the book first: make book)")
    bad = [t for t in themes if t not in THEMES]
    if bad:
        raise ValueError(f"themes must be among {THEMES}, got {bad}")
    binary = find_chromium(chromium)
    if binary is None:
        raise FileNotFoundError(CHROMIUM_HELP)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pages = list(book_pages(root) if pages is None else pages)
    problems: list[Problem] = []
    with _serve(root) as base, _chromium(binary) as browser:
        target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = browser.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        state: dict[str, Any] = {"page": "", "theme": "", "external": [], "errors": []}

        def on_paused(event: dict[str, Any]) -> None:
            params = event["params"]
            url = params["request"]["url"]
            if url.startswith((base, "data:", "blob:", "about:")):
                browser.send("Fetch.continueRequest", {"requestId": params["requestId"]}, session=session)
            else:
                state["external"].append(url)
                browser.send("Fetch.failRequest", {"requestId": params["requestId"], "errorReason": "BlockedByClient"},
                             session=session)

        def on_exception(event: dict[str, Any]) -> None:
            details = event["params"]["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text", "")
            state["errors"].append(f"{text.splitlines()[0] if text else 'exception'} ({details.get('url', '')}:"
                                   f"{details.get('lineNumber', 0) + 1})")

        def on_console(event: dict[str, Any]) -> None:
            params = event["params"]
            if params.get("type") in ("error", "assert"):
                args = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
                state["errors"].append(f"console.{params['type']}: {args[:300]}")

        def on_log(event: dict[str, Any]) -> None:
            entry = event["params"]["entry"]
            url = entry.get("url", "")
            if url.endswith("/favicon.ico"):  # the browser's own request, not the page's
                return
            if entry.get("level") == "error" and not any(u in url for u in state["external"]):
                text = f"{entry.get('source', 'log')}: {entry.get('text', '')[:300]} {url}"
                state["errors"].append(text.strip())

        browser.handlers.update({"Fetch.requestPaused": on_paused, "Runtime.exceptionThrown": on_exception,
                                 "Runtime.consoleAPICalled": on_console, "Log.entryAdded": on_log})
        for method in ("Page.enable", "Runtime.enable", "Log.enable"):
            browser.send(method, session=session)
        browser.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]}, session=session)
        browser.send("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": VIEWPORT[1],
                                                            "deviceScaleFactor": 1, "mobile": False}, session=session)
        for theme in themes:
            remember = f"localStorage.setItem('mode', '{theme}'); localStorage.setItem('theme', '{theme}');"
            script = browser.send("Page.addScriptToEvaluateOnNewDocument",
                                  {"source": f"try {{ {remember} }} catch (e) {{}}"}, session=session)["identifier"]
            media = {"features": [{"name": "prefers-color-scheme", "value": theme}]}
            browser.send("Emulation.setEmulatedMedia", media, session=session)
            for page in pages:
                state.update(page=page, theme=theme, external=[], errors=[])
                shown, found = _open(browser, session, base + urllib.parse.quote(page),
                                     out / f"{_slug(page)}-{theme}.png", max_height=max_height)
                if shown is not None and shown != theme:
                    found.append(("theme", f"the page shows theme {shown!r} instead of {theme!r}"))
                found += [("external request", f"{u} (blocked)") for u in dict.fromkeys(state["external"])]
                found += [("javascript error", e) for e in dict.fromkeys(state["errors"])]
                problems += [Problem(page, kind, detail, theme) for kind, detail in found]
                log(f"{page} [{theme}]: {len(found)} problems")
            browser.send("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script}, session=session)
    return problems


def _evaluate(browser: _DevTools, session: str, expression: str, timeout: float = 30.0) -> Any:
    result = browser.send("Runtime.evaluate", {"expression": expression, "awaitPromise": True, "returnByValue": True},
                          session=session, timeout=timeout)
    if "exceptionDetails" in result:
        raise RuntimeError(f"evaluating a check failed: {result['exceptionDetails'].get('text')}")
    return result.get("result", {}).get("value")


def _content_height(browser: _DevTools, session: str) -> int:
    metrics = browser.send("Page.getLayoutMetrics", session=session)
    size = metrics.get("cssContentSize") or metrics.get("contentSize") or {}
    return int(size.get("height", VIEWPORT[1])) or VIEWPORT[1]


def _screenshot(browser: _DevTools, session: str, shot: Path, *, max_height: int) -> None:
    """The whole page (up to ``max_height``) as the reader's browser lays it out, then the viewport restored.

    The viewport is grown to the page's height and the page captured as it is then laid out (Chromium's own
    "beyond the viewport" capture skips the re-layout, and the theme's fixed sidebars land in the wrong place).
    """
    height = VIEWPORT[1]
    for _ in range(3):  # growing the viewport may reflow the page to another height
        wanted = min(_content_height(browser, session), max_height)
        if wanted == height:
            break
        height = wanted
        browser.send("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": height,
                                                            "deviceScaleFactor": 1, "mobile": False}, session=session)
        browser.pump(0.4)
    data = browser.send("Page.captureScreenshot", {"format": "png"}, session=session, timeout=60)["data"]
    shot.write_bytes(base64.b64decode(data))
    browser.send("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT[0], "height": VIEWPORT[1],
                                                        "deviceScaleFactor": 1, "mobile": False}, session=session)


def _open(browser: _DevTools, session: str, url: str, shot: Path, *,
          max_height: int) -> tuple[str | None, list[tuple[str, str]]]:
    """Load one page, check it, write its screenshot: the theme it shows and ``(kind, detail)`` problems.

    The theme is ``None`` for a page without the book theme's colour modes (no ``data-mode``/``data-theme``).
    """
    loaded: list[dict[str, Any]] = []
    previous = browser.handlers.get("Page.loadEventFired")
    browser.handlers["Page.loadEventFired"] = loaded.append
    try:
        browser.send("Page.navigate", {"url": url}, session=session)
        deadline = time.monotonic() + 60
        while not loaded and time.monotonic() < deadline:
            browser.pump(0.2)
    finally:
        if previous is None:
            browser.handlers.pop("Page.loadEventFired", None)
        else:
            browser.handlers["Page.loadEventFired"] = previous
    found: list[tuple[str, str]] = []
    if not loaded:
        return None, [("load", f"{url} did not finish loading in 60 s")]
    status = _evaluate(browser, session, _MATHJAX_JS, timeout=60)
    images = _evaluate(browser, session, _IMAGES_JS, timeout=60)
    browser.pump(0.3)  # late errors and requests
    for image in images:
        if image["complete"] and image["width"] == 0:
            found.append(("broken image", f"{image['src']} did not load"))
        elif not image["complete"]:
            found.append(("broken image", f"{image['src']} did not finish loading"))
    if status.get("errors"):
        found.append(("mathjax error", f"{status['errors']} formulas failed to typeset"))
    for fragment in untypeset_tex(_evaluate(browser, session, _VISIBLE_TEXT_JS) or ""):
        found.append(("untypeset TeX", fragment))
    _screenshot(browser, session, shot, max_height=max_height)
    themed = bool(status.get("theme") or status.get("mode"))
    return (str(status.get("theme", "")) if themed else None), found


# ---------------------------------------------------------------------------------------------- command line

def _summary(problems: Iterable[Problem]) -> str:
    counts: dict[str, int] = {}
    for p in problems:
        counts[p.kind] = counts.get(p.kind, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))


def main(argv: list[str] | None = None) -> int:
    """``python -m mbt.book.check [HTML] [--out DIR] [--no-browser] [--chromium BIN] [--repository URL]``.

    Exit status: 0 when every page passes, 1 when a check fails, 2 when the book or Chromium is missing.
    """
    parser = argparse.ArgumentParser(prog="python -m mbt.book.check", description=__doc__.splitlines()[0])
    parser.add_argument("html", nargs="?", default="_build/html", help="the built book (default: _build/html)")
    parser.add_argument("--out", default=None, help="folder for the screenshots (default: <html>/../check)")
    parser.add_argument("--no-browser", action="store_true", help="run the static checks only")
    parser.add_argument("--chromium", default=None, help="Chromium/Chrome binary (default: $CHROMIUM or PATH)")
    parser.add_argument("--repository", default=None,
                        help="the book's repository URL (default: pyproject.toml's, found above HTML)")
    parser.add_argument("--themes", default=",".join(THEMES), help="colour modes, comma-separated")
    args = parser.parse_args(argv)
    html = Path(args.html)
    if not html.is_dir():
        print(f"check-book: {html} is not a built book (run `make book` first)", file=sys.stderr)
        return 2
    repository = args.repository or _repository_of(html)
    problems = check_static(html, repository=repository)
    print(f"static checks: {len(book_pages(html))} pages, {len(problems)} problems")
    if not args.no_browser:
        if find_chromium(args.chromium) is None:
            for p in problems:
                print(p)
            print(f"check-book: {CHROMIUM_HELP}", file=sys.stderr)
            return 2
        out = Path(args.out) if args.out else html.parent / "check"
        themes = [t.strip() for t in args.themes.split(",") if t.strip()]
        problems += check_browser(html, out, chromium=args.chromium, themes=themes, log=lambda s: None)
        print(f"browser checks: {len(book_pages(html))} pages × {len(themes)} themes; screenshots in {out}")
    for p in problems:
        print(p)
    if problems:
        print(f"check-book: FAILED ({_summary(problems)})")
        return 1
    print("check-book: every page passes")
    return 0


def _repository_of(html: Path) -> str | None:
    """The repository URL of the checkout that holds ``html`` (its ``pyproject.toml``), if there is one."""
    for folder in [html.resolve(), *html.resolve().parents]:
        if (folder / "pyproject.toml").is_file():
            with contextlib.suppress(KeyError, OSError, ValueError):
                return repository_url(folder)
    return None


if __name__ == "__main__":
    sys.exit(main())
