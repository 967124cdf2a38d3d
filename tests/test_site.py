"""The tutorial website (`make book` → build/book/html) in a real browser: headless Chromium through Playwright.

- the landing page and three lessons: every equation typeset by MathJax (its output elements present, no raw
  ``$...$`` or ``\\(...\\)`` left in the text), every image loaded (``naturalWidth > 0``), no request leaving
  127.0.0.1 (the site works offline), an "Open in Colab" link on each lesson; screenshots are written to
  build/book/screenshots/;
- every internal link of the whole site (pages, images, scripts, stylesheets and ``#anchors``) resolves;
- each checker has a negative control: a page with a raw formula, a broken image and dead links fails it.

Chromium is Debian's (``apt-get install -y chromium chromium-driver``, /usr/bin/chromium); Playwright drives it
with ``executable_path`` (no browser download). Under ``CI=true`` a missing Chromium, Playwright or built site is a
failure; elsewhere the tests are skipped with the command that fixes it.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urldefrag, urljoin, urlparse
from urllib.request import urlopen

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "build" / "book" / "html"
SCREENSHOTS = ROOT / "build" / "book" / "screenshots"
CI = os.environ.get("CI", "").lower() == "true"
LESSONS = ("01", "04", "07")  # the three lessons opened in the browser (plots, equations, an embedded figure)
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _unavailable(what: str, fix: str):
    """Fail under CI, skip elsewhere, naming the command that fixes it."""
    message = f"{what}; fix: {fix}"
    if CI:
        pytest.fail(message)
    pytest.skip(message)


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


# --- serving and crawling -----------------------------------------------------------------------------------

class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def serve():
    """A function that serves a folder on 127.0.0.1 and returns its base URL (servers stop with the module)."""
    servers = []

    def start(folder: Path) -> str:
        handler = functools.partial(_QuietHandler, directory=str(folder))
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def site() -> Path:
    if not (SITE / "book" / "index.html").exists():
        _unavailable(f"no built site at {SITE}", "make book")
    return SITE


class _Links(HTMLParser):
    """hrefs and srcs of a page, and the ids (anchors) it defines."""

    def __init__(self):
        super().__init__()
        self.links, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            value = attrs.get(key)
            if value and not (tag == "link" and attrs.get("rel") in ("preconnect", "dns-prefetch")):
                self.links.append(value)


def broken_links(start: str) -> list[str]:
    """Crawl every page reachable from ``start`` on its host; return the internal links that do not resolve.

    A link is broken if fetching it fails (HTTP error) or if its ``#fragment`` is not an id of the target page.
    Links to other hosts (arXiv, Colab, the repository) are not followed.
    """
    host = urlparse(start).netloc
    pages, queue, seen, problems, fragments = {}, [start], {start}, [], []

    def fetch(url):
        try:
            with urlopen(url, timeout=30) as response:
                return response.read(), response.headers.get_content_type()
        except HTTPError as error:
            return error.code, None

    while queue:
        url = queue.pop()
        body, kind = fetch(url)
        if isinstance(body, int):
            problems.append(f"{url}: HTTP {body}")
            continue
        if kind != "text/html":
            continue
        parser = _Links()
        parser.feed(body.decode("utf-8", "replace"))
        pages[url] = parser.ids
        for link in parser.links:
            if link.startswith(("mailto:", "javascript:", "data:")):
                continue
            target = urljoin(url, link)
            if urlparse(target).netloc != host:
                continue
            target, fragment = urldefrag(target)
            if fragment:
                fragments.append((url, target, fragment))
            if target not in seen:
                seen.add(target)
                queue.append(target)
    for source, target, fragment in fragments:
        if target in pages and fragment not in pages[target]:
            problems.append(f"{source}: #{fragment} is no anchor of {target}")
    return sorted(set(problems))


# --- the browser ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """A Chromium context with a new empty profile; requests to any host but 127.0.0.1 are blocked and recorded."""
    executable = chromium_path()
    if executable is None:
        _unavailable("Chromium is not installed", "apt-get update && apt-get install -y chromium chromium-driver")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright is not installed", 'pip install -e ".[book]" (or make book)')
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=executable, headless=True,
            args=CHROMIUM_FLAGS, viewport={"width": 1280, "height": 900})
        context.outside = []
        context.set_default_timeout(120_000)  # the machine may be busy: generous, the checks stay strict

        def route(route):
            if urlparse(route.request.url).hostname == "127.0.0.1":
                route.continue_()
            else:
                context.outside.append(route.request.url)
                route.abort()

        context.route("**/*", route)
        yield context
        context.close()


# Text nodes outside code, outputs and MathJax's own elements that still hold TeX delimiters.
RAW_MATH_JS = r"""() => {
  const skip = "pre, code, script, style, textarea, mjx-container, .highlight, .cell_output, .MathJax";
  const root = document.querySelector("main") || document.body;
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const raw = [];
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest(skip)) continue;
    const text = node.textContent;
    if (/\$[^$\s][^$]*\$|\\\(|\\\[|\\(frac|mathbf|sum|hat|mathcal)\b/.test(text)) raw.push(text.trim().slice(0, 120));
  }
  return raw;
}"""

# Every <img>: made eager, awaited, and reported if it has no pixels.
IMAGES_JS = r"""async () => {
  const images = Array.from(document.images);
  for (const img of images) { img.loading = "eager"; }
  await Promise.all(images.map(img => img.decode().catch(() => null)));
  return images.map(img => ({src: img.currentSrc || img.src, width: img.naturalWidth}));
}"""


def typeset(page) -> int:
    """Wait for MathJax to finish; return the number of its output elements."""
    page.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise", timeout=120_000)
    page.evaluate("() => MathJax.startup.promise")
    return page.locator("mjx-container").count()


def check_page(page, url: str) -> dict:
    """Open ``url``; return what the checks found: formulas typeset, raw TeX left, images without pixels."""
    page.goto(url, wait_until="load")
    formulas = typeset(page)
    images = page.evaluate(IMAGES_JS)
    return {"formulas": formulas, "raw": page.evaluate(RAW_MATH_JS),
            "images": len(images), "broken_images": [i["src"] for i in images if i["width"] == 0]}


def lesson_pages(site: Path) -> list[str]:
    pages = []
    for number in LESSONS:
        found = sorted((site / "notebooks").glob(f"{number}_*.html"))
        assert found, f"lesson {number} is missing from the site ({site / 'notebooks'})"
        pages.append(found[0].relative_to(site).as_posix())
    return pages


# --- the tests --------------------------------------------------------------------------------------------------

def test_landing_page_and_lessons_render(site, serve, browser):
    base = serve(site)
    page = browser.new_page()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for relative in ["book/index.html"] + lesson_pages(site):
        found = check_page(page, base + relative)
        name = Path(relative).stem
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))
        assert found["formulas"] > 0, f"{relative}: no equation typeset by MathJax"
        assert found["raw"] == [], f"{relative}: raw TeX left in the text: {found['raw'][:5]}"
        assert found["broken_images"] == [], f"{relative}: images that did not load: {found['broken_images']}"
        if relative.startswith("notebooks/"):
            assert found["images"] > 1, f"{relative}: no plot among the outputs"  # the logo is one image
            first_plot = page.locator(".cell_output img").first
            first_plot.scroll_into_view_if_needed()
            first_plot.screenshot(path=str(SCREENSHOTS / f"{name}_plot.png"))
            notebook = relative.removesuffix(".html") + ".ipynb"
            colab = page.locator(f'a[href^="https://colab.research.google.com/github/"][href$="/{notebook}"]')
            assert colab.count() > 0, f"{relative}: no Open-in-Colab link to {notebook}"
        else:
            tables = page.locator("table")
            assert tables.count() >= 2, "the landing page lacks the learning path or the notation"
            page.screenshot(path=str(SCREENSHOTS / f"{name}_full.png"), full_page=True)
    page.close()
    assert browser.outside == [], f"requests that left 127.0.0.1 (the site must work offline): {browser.outside}"


def test_no_broken_internal_link(site, serve):
    problems = broken_links(serve(site) + "index.html")
    assert problems == [], "broken internal links:\n" + "\n".join(problems[:30])


BROKEN_PAGE = """<!DOCTYPE html><html><head><title>broken</title>
<script>window.MathJax = {startup: {promise: Promise.resolve()}};</script></head>
<body><main><p>An untypeset formula: $E = \\sum_i E_i$.</p>
<img src="missing.png" alt="missing"><a href="nowhere.html">dead</a><a href="#no-such-anchor">dead anchor</a>
</main></body></html>"""


def test_checks_catch_a_broken_page(tmp_path, serve, browser):
    """Negative control: raw TeX, an image that does not load and dead links are all reported."""
    (tmp_path / "index.html").write_text(BROKEN_PAGE)
    base = serve(tmp_path)
    page = browser.new_page()
    found = check_page(page, base + "index.html")
    page.close()
    assert found["formulas"] == 0
    assert found["raw"] and "E = \\sum_i E_i" in found["raw"][0]
    assert found["broken_images"] == [base + "missing.png"]
    problems = broken_links(base + "index.html")
    assert any("nowhere.html: HTTP 404" in p for p in problems)
    assert any("#no-such-anchor" in p for p in problems)
    assert any("missing.png: HTTP 404" in p for p in problems)
