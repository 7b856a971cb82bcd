"""The documentation site, built without Quarto from the committed outputs, checked in a real headless browser.

Debian's chromium (tools/install_chromium.sh, run by `make test`'s set-up) is driven by Playwright's Python
package through `executable_path`: Playwright downloads no browser. The site is served on localhost; every
page must have its title and the navigation, load its plots, have no console error and no broken internal link.
Requests to other hosts (MathJax's CDN) are answered with an empty response: this machine and CI are offline.
"""
import functools
import html
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_ARGS = ["--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic"]
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


def _pages():
    "What the site must hold: the existing notebooks of nbs/sidebar.yml, in its order, read from the notebooks."
    contents = yaml.safe_load((NBS / "sidebar.yml").read_text(encoding="utf-8"))["website"]["sidebar"]["contents"]
    pages = []
    for name in contents:
        path = NBS / name
        if not path.exists(): continue
        nb = nbformat.read(path, as_version=4)
        h1 = next(m for c in nb.cells if c.cell_type == "markdown"
                  for m in [re.search(r"^#\s+(\S.*?)\s*$", c.source, re.M)] if m)
        shown = [c for c in nb.cells if c.cell_type == "code" and not re.match(r"#\|\s*hide\b", c.source)]
        has_plot = any(set(o.get("data", {})) & set(IMAGE_MIMES) for c in shown for o in c.get("outputs", []))
        href = re.sub(r"^\d+[a-zA-Z0-9]*_", "", path.stem.lower()) + ".html"  # as nbdev and Quarto name pages
        pages.append(dict(stem=path.stem, href=href, title=h1[1], has_plot=has_plot))
    return pages


PAGES = _pages()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site") / "_docs"
    r = subprocess.run([sys.executable, "tools/build_site.py", "--no-quarto", "--no-readme", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, f"site build failed\n{r.stdout}\n{r.stderr}"
    return out


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass


@pytest.fixture(scope="module")
def server(site):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=site))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("chromium is not on PATH: install it with `bash tools/install_chromium.sh` (`make test` does)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Visit:
    "A browser page that records console errors, uncaught exceptions and requests to other hosts."
    def __init__(self, browser, local_prefixes):
        self.ctx = browser.new_context(viewport={"width": 1280, "height": 900})
        self.errors, self.external = [], []
        self.ctx.route(lambda url: not url.startswith(local_prefixes), self._stub)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(f"console: {m.text} {m.location}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"exception: {e}"))

    def _stub(self, route):
        self.external.append(route.request.url)
        route.fulfill(status=200, body="", content_type="text/plain")

    def images(self):
        return self.page.eval_on_selector_all(
            "main img", "els => els.map(e => ({src: e.currentSrc.slice(0, 60), ok: e.complete && e.naturalWidth > 0}))")

    def close(self): self.ctx.close()


@pytest.fixture
def visit(browser, server):
    v = Visit(browser, (server, "file://", "data:", "about:"))
    yield v
    v.close()


def test_pages_present():
    assert PAGES and PAGES[0]["href"] == "index.html", "nbs/sidebar.yml must start with index.ipynb (the home page)"


@pytest.mark.parametrize("page", PAGES, ids=[p["stem"] for p in PAGES])
def test_page_in_browser(page, visit, server):
    resp = visit.page.goto(f"{server}/{page['href']}", wait_until="load")
    assert resp.status == 200
    assert visit.page.title() == page["title"]
    assert visit.page.locator("main h1").first.inner_text().strip() == page["title"]
    nav = visit.page.eval_on_selector_all("nav.site-nav li a", "els => els.map(e => e.getAttribute('href'))")
    assert nav == [p["href"] for p in PAGES], "navigation: every page, in nbs/sidebar.yml's order"
    assert visit.page.get_attribute("nav.site-nav [aria-current=page]", "href") == page["href"]

    images = visit.images()
    local = [i for i in images if not i["src"].startswith("http") or i["src"].startswith(server)]
    assert all(i["ok"] for i in local), f"images that did not load: {[i['src'] for i in local if not i['ok']]}"
    if page["has_plot"]:
        assert any(i["ok"] for i in local), "the notebook has plots, the page shows none"

    # every same-origin link: the page answers 200, and a #fragment names an element of that page
    here = visit.page.url
    broken, ids = [], {}
    for href in set(visit.page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")):
        if not href.startswith(server + "/"): continue
        url, frag = urldefrag(href)
        if url not in ids:
            r = visit.page.request.get(url)
            if r.status != 200:
                broken.append(f"{href} -> HTTP {r.status}"); ids[url] = set(); continue
            ids[url] = {html.unescape(unquote(i)) for i in re.findall(r'\bid="([^"]*)"', r.text())}
        if frag and unquote(frag) not in ids[url]:
            broken.append(f"{href} -> no element id={unquote(frag)!r} on {urlsplit(url).path}")
    assert not broken, f"broken links on {here}:\n" + "\n".join(sorted(broken))
    assert not visit.errors, "\n".join(visit.errors)


def test_screenshot_of_walkthrough(visit, server):
    "A picture of the walkthrough page (the home page until the walkthrough exists), for people to look at."
    page = next((p for p in PAGES if p["stem"] == "05_walkthrough"), PAGES[0])
    visit.page.goto(f"{server}/{page['href']}", wait_until="load")
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / f"site-{page['stem']}.png"
    visit.page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    assert not visit.errors, "\n".join(visit.errors)


def test_site_works_from_file_url(visit, site):
    "Opened from disk (file://), the links lead to files that exist and the plots load."
    page = next((p for p in PAGES if p["has_plot"]), PAGES[-1])
    visit.page.goto((site / page["href"]).as_uri(), wait_until="load")
    assert visit.page.title() == page["title"]
    if page["has_plot"]:
        assert any(i["ok"] for i in visit.images())
    hrefs = visit.page.eval_on_selector_all("nav.site-nav a", "els => els.map(e => e.href)")
    assert hrefs and all(h.startswith("file://") for h in hrefs), hrefs
    missing = [h for h in hrefs if not Path(unquote(urlsplit(h).path)).exists()]
    assert not missing, f"navigation links to missing files: {missing}"
    other = next(p for p in PAGES if p["href"] != page["href"])
    visit.page.click(f"nav.site-nav a[href='{other['href']}']")
    visit.page.wait_for_load_state("load")
    assert visit.page.url == (site / other["href"]).as_uri()
    assert visit.page.title() == other["title"]
    assert not visit.errors, "\n".join(visit.errors)


# ---------------------------------------------------------------------------- the build's link rewriting

def test_links_between_notebooks_become_page_links(build_site):
    bs = build_site
    pages = [dict(src="00_core.ipynb", href="core.html"), dict(src="05_walkthrough.ipynb", href="walkthrough.html")]
    fix = bs._link_rewriter(pages, "https://example.org/focal_tutorial")
    assert fix('<a href="05_walkthrough.ipynb#results">') == '<a href="walkthrough.html#results">'
    assert fix('<a href="./00_core.ipynb">') == '<a href="core.html">'
    assert fix('<img src="00_core.ipynb">') == '<img src="core.html">'
    assert fix('<a href="https://example.org/focal_tutorial/core.html#class_weights">') == \
        '<a href="core.html#class_weights">'
    colab = '<a href="https://colab.research.google.com/github/o/r/blob/main/nbs/05_walkthrough.ipynb">'
    assert fix(colab) == colab, "links to other sites stay as they are"
    assert fix('<a href="99_missing.ipynb">') == '<a href="99_missing.ipynb">', "only pages the site has"


def test_heading_ids_are_quarto_ids(build_site):
    "nbdev links symbols to Quarto's heading ids (study.html#smallcnn): the pages give their headings those ids."
    bs = build_site
    page = ('<h2 id="Why-weight-classes-at-all?">Why<a class="anchor-link" href="#Why-weight-classes-at-all?">¶</a>'
            '</h2><h3 id="SmallCNN">SmallCNN</h3><h2 id="What-%22ratio%22-means">x</h2>')
    out = bs._quarto_ids(page)
    assert 'id="why-weight-classes-at-all"' in out and 'href="#why-weight-classes-at-all"' in out
    assert 'id="smallcnn"' in out and 'id="what-ratio-means"' in out
