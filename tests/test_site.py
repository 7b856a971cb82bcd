"""The documentation site, built without Quarto from the committed outputs, checked in a real headless browser.

Debian's chromium (installed by `make setup`) is driven by Playwright's Python package through `executable_path`:
Playwright downloads no browser. The site is served on localhost and every request to another host is aborted,
so what passes here works offline. On every page: the search finds `class_weights` on the core page, the
on-page contents list exists, code has copy buttons, math is rendered (no raw TeX left in the text), images
load, internal links answer, no console error; a screenshot of each page lands in test-artifacts/.
"""
import functools
import html
import http.server
import re
import shutil
import threading
from pathlib import Path
from urllib.parse import unquote, urldefrag, urlsplit

import nbformat
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT / "nbs"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_ARGS = ["--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic"]
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
RAW_TEX = re.compile(r"\$\$|\$\\|\\\(|\\\[|\$[A-Za-z]\$|\\(alpha|gamma|beta|frac|sum|log)\b")
TEXT_NO_CODE = """() => { const a = document.querySelector('article').cloneNode(true);
  a.querySelectorAll('pre, code, script, style, .MathJax_Preview').forEach(e => e.remove()); return a.innerText; }"""
MATHJAX_DONE = """() => new Promise(done => window.MathJax && MathJax.Hub
  ? MathJax.Hub.Register.StartupHook('End', () => done(true)) : done(false))"""


def _pages():
    "What the site must hold: the existing notebooks of nbs/sidebar.yml, in its order, read from the notebooks."
    contents = yaml.safe_load((NBS / "sidebar.yml").read_text(encoding="utf-8"))["website"]["sidebar"]["contents"]
    pages = []
    for name in contents:
        path = NBS / name
        if not path.exists(): continue
        nb = nbformat.read(path, as_version=4)
        md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        h1 = re.search(r"^#\s+(\S.*?)\s*$", md, re.M)
        shown = [c for c in nb.cells if c.cell_type == "code" and not re.match(r"#\|\s*hide\b", c.source)]
        has_plot = any(set(o.get("data", {})) & set(IMAGE_MIMES) for c in shown for o in c.get("outputs", []))
        has_math = bool(re.search(r"\$[^$\s][^$\n]*\$", md))
        href = re.sub(r"^\d+[a-zA-Z0-9]*_", "", path.stem.lower()) + ".html"  # as nbdev and Quarto name pages
        pages.append(dict(stem=path.stem, href=href, title=h1[1], has_plot=has_plot, has_math=has_math))
    return pages


PAGES = _pages()


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
        pytest.skip("chromium is not on PATH: `make setup` installs Debian's chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Visit:
    "A browser page that records console errors and uncaught exceptions; requests to other hosts are aborted."
    def __init__(self, browser, local_prefixes):
        self.ctx = browser.new_context(viewport={"width": 1440, "height": 900})  # wide: furo shows its contents
        self.errors, self.external = [], []
        self.ctx.route(lambda url: not url.startswith(local_prefixes), self._abort)
        self.page = self.ctx.new_page()
        self.page.on("console", lambda m: m.type == "error" and m.location.get("url", "").startswith(local_prefixes)
                     and self.errors.append(f"console: {m.text} {m.location}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"exception: {e}"))

    def _abort(self, route):
        self.external.append(route.request.url)
        route.abort()

    def goto(self, url):
        resp = self.page.goto(url, wait_until="load")
        self.page.evaluate(MATHJAX_DONE)
        return resp

    def images(self):
        return self.page.eval_on_selector_all(
            "article img", "els => els.map(e => ({src: e.currentSrc.slice(0, 60), ok: e.complete && e.naturalWidth > 0}))")

    def search_finds(self, term, href):
        "Type `term` into the sidebar's search box; the results list a link to `href`."
        self.page.fill("input.sidebar-search", term)
        self.page.press("input.sidebar-search", "Enter")
        self.page.wait_for_selector(f"#search-results ul.search li a[href^='{href}']", timeout=15_000)

    def close(self): self.ctx.close()


@pytest.fixture
def visit(browser, server):
    v = Visit(browser, (server, "file://", "data:", "about:"))
    yield v
    v.close()


def test_pages_present():
    assert PAGES and PAGES[0]["href"] == "index.html", "nbs/sidebar.yml must start with index.ipynb (the home page)"
    assert any(p["href"] == "core.html" for p in PAGES)


def test_each_page_keeps_its_introduction(site):
    """nbdev turns a notebook's first cell into the page's title and description and drops the rest of that cell:
    the text after `> description` must start a cell of its own, and it must reach the page."""
    for page in PAGES:
        nb = nbformat.read(NBS / f"{page['stem']}.ipynb", as_version=4)
        first = [line for line in nb.cells[0].source.splitlines() if line.strip()]
        assert all(line.startswith(("# ", "> ")) for line in first), f"{page['stem']}: text in the title cell"
        intro = nb.cells[1]
        if intro.cell_type == "markdown" and not intro.source.startswith("#"):
            plain = lambda t: " ".join(re.findall(r"[A-Za-z0-9]+", t))  # quotes and markup aside
            line = next(x for x in intro.source.split("\n") if x[:1].isalpha())  # the first line of prose
            start = plain(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", line)).split()[:5]
            text = html.unescape(re.sub(r"<[^>]+>", " ", (Path(site) / page["href"]).read_text(encoding="utf-8")))
            assert " ".join(start) in plain(text), f"{page['href']}: its introduction is missing"


@pytest.mark.parametrize("page", PAGES, ids=[p["stem"] for p in PAGES])
def test_page_in_browser(page, visit, server):
    p = visit.page
    assert visit.goto(f"{server}/{page['href']}").status == 200
    plain = lambda t: t.replace("\u2019", "'")  # Sphinx's smart quotes: AutoMM’s is AutoMM's
    assert plain(p.title()).startswith(page["title"])
    assert plain(p.locator("article h1").first.inner_text().strip().rstrip("#").strip()) == page["title"]
    nav = p.eval_on_selector_all(".sidebar-tree a.reference.internal",
                                 "els => els.map(e => new URL(e.href).pathname.split('/').pop())")
    assert nav == [q["href"] for q in PAGES[1:]], "navigation: every page in nbs/sidebar.yml's order"
    assert p.locator(".toc-drawer .toc-tree a").count() > 0 and p.locator(".toc-drawer .toc-tree").is_visible(), \
        "an on-page contents list"
    code = p.locator("article div.highlight pre").count()
    assert code > 0 and p.locator("article button.copybtn").count() == code, "a copy button on every code block"
    clipped = p.eval_on_selector_all("article pre", """els => els.filter(e => e.scrollWidth > e.clientWidth + 1
        && !['auto', 'scroll'].includes(getComputedStyle(e).overflowX)).map(e => e.innerText.slice(0, 60))""")
    assert not clipped, f"long lines cut off, not scrollable: {clipped}"
    repo = p.eval_on_selector_all(".site-repo a", "els => els.map(e => e.href)")
    assert len(repo) == 2 and repo[1] == repo[0] + "/issues/new", "the repository and its issue link"

    text = p.evaluate(TEXT_NO_CODE)
    assert not RAW_TEX.findall(text), f"raw TeX in the text: {RAW_TEX.findall(text)[:5]}"
    if page["has_math"]:
        assert p.locator("article .MathJax_CHTML").count() > 0, "the notebook has math, the page shows none"

    images = [i for i in visit.images() if not i["src"].startswith("http") or i["src"].startswith(server)]
    assert all(i["ok"] for i in images), f"images that did not load: {[i['src'] for i in images if not i['ok']]}"
    if page["has_plot"]:
        assert images, "the notebook has plots, the page shows none"

    ARTIFACTS.mkdir(exist_ok=True)
    p.screenshot(path=str(ARTIFACTS / f"site-{page['stem']}.png"), full_page=True)

    # every same-origin link answers 200, and a #fragment names an element of its page
    broken, ids = [], {}
    for href in sorted(set(p.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"))):
        if not href.startswith(server + "/"): continue
        url, frag = urldefrag(href)
        if url not in ids:
            r = p.request.get(url)
            if r.status != 200:
                broken.append(f"{href} -> HTTP {r.status}"); ids[url] = set(); continue
            ids[url] = {html.unescape(unquote(i)) for i in re.findall(r'\bid="([^"]*)"', r.text())}
        if frag and unquote(frag) not in ids[url]:
            broken.append(f"{href} -> no element id={unquote(frag)!r} on {urlsplit(url).path}")
    assert not broken, f"broken links on {page['href']}:\n" + "\n".join(broken)

    visit.search_finds("class_weights", "core.html")
    assert not visit.errors, "\n".join(visit.errors)


def test_symbol_links_reach_their_heading(visit, server):
    "nbdev links symbols as core.html#class_weights (Quarto's ids): the page has that id, on the symbol's heading."
    visit.goto(f"{server}/core.html#class_weights")
    heading = visit.page.evaluate("""() => { const e = document.getElementById('class_weights');
        return e && (e.matches('h1,h2,h3,h4,section') ? e : e.nextElementSibling).innerText; }""")
    assert heading and heading.strip().startswith("class_weights"), heading


def test_site_works_from_disk(visit, site):
    "Opened from disk (file://): math renders from the site's own MathJax, search works, the pages link up."
    page = next(p for p in PAGES if p["has_math"])
    visit.goto((site / page["href"]).as_uri())
    assert visit.page.locator("article .MathJax_CHTML").count() > 0
    assert not RAW_TEX.findall(visit.page.evaluate(TEXT_NO_CODE))
    hrefs = visit.page.eval_on_selector_all(".sidebar-tree a.internal", "els => els.map(e => e.href)")
    missing = [h for h in hrefs if not Path(unquote(urlsplit(h).path)).exists()]
    assert hrefs and not missing, f"navigation links to missing files: {missing}"
    visit.search_finds("class_weights", "core.html")
    assert not visit.errors and not visit.external, visit.errors + visit.external


# ------------------------------------------------------------------------------------------- the build's glue

def test_show_doc_markdown_is_tidied(build_site):
    "show_doc's source link goes below its heading, a default of None reads `=None`, site links become page links."
    md = ('[source](https://github.com/o/r/blob/main/p/core.py#L72){target="_blank" style="float:right"}\n\n'
          "### class_weights\n\n```python\ndef class_weights(\n    classes:NoneType=None, # order\n)\n```\n"
          "See [focal_loss](https://example.org/p/losses.html#focal_loss) and [the walkthrough](05_walkthrough.ipynb)"
          " or [study](study.html#smallcnn); [Colab](https://colab.research.google.com/x/05_walkthrough.ipynb).")
    out = build_site.fix_md(md, {"05_walkthrough.ipynb": "walkthrough.ipynb", "01_losses.ipynb": "losses.ipynb",
                                 "06_study.ipynb": "study.ipynb"}, "https://example.org/p")
    assert out.index("### class_weights") < out.index("{.source-link}\n[source](https://github.com/o/r/")
    assert "classes=None, # order" in out and "NoneType" not in out
    assert "](losses.ipynb#focal_loss)" in out and "](walkthrough.ipynb)" in out and "](study.ipynb#smallcnn)" in out
    assert "](https://colab.research.google.com/x/05_walkthrough.ipynb)" in out, "other sites' links stay"


# --------------------------------------------------------------------------------------- GitHub workflows

def _workflow(name):
    wf = yaml.safe_load((ROOT / ".github" / "workflows" / name).read_text(encoding="utf-8"))
    return wf, [s for job in wf["jobs"].values() for s in job["steps"]]


def test_test_workflow_runs_the_readme_test_command():
    wf, steps = _workflow("test.yaml")
    assert {"push", "pull_request"} <= set(wf[True] if True in wf else wf["on"])  # YAML 1.1 reads `on` as True
    runs = [s.get("run", "") for s in steps]
    assert "make test" in runs, runs
    assert "`make test`" in (ROOT / "README.md").read_text(encoding="utf-8"), "the README names the same command"


def test_deploy_workflow_publishes_nbdev_docs_with_quarto():
    wf, steps = _workflow("deploy.yaml")
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    assert "quarto-dev/quarto-actions/setup" in uses and "actions/deploy-pages" in uses, uses
    assert any("nbdev_docs" in s.get("run", "") for s in steps)
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"


def test_execute_writes_a_notebook_back_only_when_it_changed(build_site, tmp_path, monkeypatch, capfd):
    "`make docs` twice leaves git status clean: same outputs, file untouched; one progress line, no kernel warnings."
    monkeypatch.chdir(ROOT)  # nbdev's clean settings come from settings.ini
    for k in ("MPLBACKEND", "FOCAL_TUTORIAL_SMOKE"): monkeypatch.delenv(k, raising=False)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("print(6 * 7)")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "t.ipynb"
    nbformat.write(nb, path)
    build_site.execute([path], tmp_path)
    assert nbformat.read(path, as_version=4).cells[0].outputs[0]["text"] == "42\n", "outputs written back"
    stamp = path.stat().st_mtime_ns
    build_site.execute([path], tmp_path)
    assert path.stat().st_mtime_ns == stamp, "nothing changed, so the notebook is not rewritten"
    out = capfd.readouterr()
    assert out.out.count("t.ipynb: run in") == 2 and "updated" in out.out and "unchanged" in out.out
    assert "without encryption" not in out.err + out.out
