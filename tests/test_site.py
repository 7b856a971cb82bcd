"""The documentation site, built without Quarto from the committed outputs, checked in a real headless browser.

Debian's chromium (installed by `make setup`) is driven by Playwright's Python package through `executable_path`:
Playwright downloads no browser. The site is served on localhost and every request to another host is aborted,
so what passes here works offline. On every page: the search finds `class_weights` on the core page, the
on-page contents list exists, code has copy buttons, math is rendered (no raw TeX left in the text), images
load, internal links answer, no console error; a screenshot of each page lands in test-artifacts/.

At 1280 px (a laptop; the `layout` fixture visits every page once and the tests below read its measures, written to
test-artifacts/site-layout.json): the sidebar's captions and order, tables that fit the column, the prose-word
budgets, the losses page's first figure in its first third, figures shown near the size they were drawn at with alt
text that is no file name, one contents entry per function, a favicon, and links (not Markdown) in signatures.
"""
import functools
import html
import http.server
import json
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


def _sidebar():
    "nbs/sidebar.yml as (caption, [notebook names]) groups: a Quarto `section` is a caption, the home page has none."
    def flat(items):
        for it in items or []:
            if isinstance(it, str): yield it
            elif isinstance(it, dict): yield from ([it["href"]] if "href" in it else []) + list(flat(it.get("contents")))
    groups = []
    for it in yaml.safe_load((NBS / "sidebar.yml").read_text(encoding="utf-8"))["website"]["sidebar"]["contents"]:
        if isinstance(it, dict) and "section" in it: groups.append((it["section"], list(flat(it.get("contents")))))
        else: groups.append((None, list(flat([it]))))
    return groups


def _pages():
    "What the site must hold: the existing notebooks of nbs/sidebar.yml, in its order, read from the notebooks."
    pages = []
    for caption, names in _sidebar():
        for name in names:
            path = NBS / name
            if not path.exists(): continue
            nb = nbformat.read(path, as_version=4)
            md = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
            h1 = re.search(r"^#\s+(\S.*?)\s*$", md, re.M)
            shown = [c for c in nb.cells if c.cell_type == "code" and not re.match(r"#\|\s*hide\b", c.source)]
            has_plot = any(set(o.get("data", {})) & set(IMAGE_MIMES) for c in shown for o in c.get("outputs", []))
            has_math = bool(re.search(r"\$[^$\s][^$\n]*\$", md))
            web_image = bool(re.search(r"!\[[^\]]*\]\(https?://|<img[^>]+src=[\"']https?://", md))  # a Colab badge
            fm = next((c.source for c in nb.cells if c.cell_type == "raw" and c.source.lstrip().startswith("---")), "")
            out = re.search(r"^output-file:\s*(\S+)", fm, re.M)  # front matter can name the page
            href = out[1] if out else re.sub(r"^\d+[a-zA-Z0-9]*_", "", path.stem.lower()) + ".html"  # as nbdev names it
            pages.append(dict(stem=path.stem, href=href, title=h1[1], has_plot=has_plot, has_math=has_math,
                              web_image=web_image, caption=caption))
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
    page = next(p for p in PAGES if p["has_math"] and not p["web_image"])  # nothing from the web on it
    visit.goto((site / page["href"]).as_uri())
    assert visit.page.locator("article .MathJax_CHTML").count() > 0
    assert not RAW_TEX.findall(visit.page.evaluate(TEXT_NO_CODE))
    hrefs = visit.page.eval_on_selector_all(".sidebar-tree a.internal", "els => els.map(e => e.href)")
    missing = [h for h in hrefs if not Path(unquote(urlsplit(h).path)).exists()]
    assert hrefs and not missing, f"navigation links to missing files: {missing}"
    visit.search_finds("class_weights", "core.html")
    assert not visit.errors and not visit.external, visit.errors + visit.external


# ------------------------------------------------------------------------------- at 1280 px: layout and text

# The reader's order (issue 28): the sidebar's captions and the pages under each. A page listed here whose notebook
# does not exist yet (a page being written) is left out, as the build leaves it out.
SIDEBAR = {
    "Tutorial": ["05_walkthrough", "01_losses", "00_core", "04_evaluate", "04a_calibration", "04b_posthoc", "06_study",
                 "07_tuning"],
    "How-to and reference": ["03_multimodal", "03a_compare", "02_data", "02a_backbone", "02b_shopee", "01c_sigmoid",
                             "07b_ray_cluster", "07a_search_space", "06a_cnn", "06b_study_analysis"],
    "Internals": ["01d_engine", "01a_fused", "01b_cpu_kernel", "00_checks", "00a_machine", "05a_runs"],
}
WIDE = {"width": 1280, "height": 900}
# Prose words per page (issue 28): the walkthrough, the losses page, and every other page outside Internals.
BUDGETS = {"05_walkthrough": 1500, "01_losses": 2000}
BUDGET = 2500
# matplotlib draws its default text (font.size, tick labels, legends: 10 pt) at 10 * dpi / 72 px in the PNG; shown
# at `ratio` of its natural width, that text is 10 * dpi / 72 * ratio px on screen, which must stay >= 9 px
# (at the stored dpi of 100: ratio >= 0.65).
DEFAULT_PT, MIN_TEXT_PX = 10, 9
FILE_NAME = re.compile(r"^\S*\.(png|jpe?g|gif|svg|webp)$|_images/", re.I)

LAYOUT = """() => {
  const art = document.querySelector('article');
  const column = art.clientWidth;
  const cells = r => [...r.children].map(c => c.textContent.trim()).filter(Boolean);
  const tables = [...art.querySelectorAll('table')].map(t => ({
    width: Math.ceil(Math.max(t.scrollWidth, t.getBoundingClientRect().width)),
    head: [...t.querySelectorAll('tr')].slice(0, 2).flatMap(cells).slice(0, 6).join(' | ').slice(0, 80)}));
  // prose: the article's text outside code, outputs, tables, math, signatures and source links (see test_word_budgets)
  const skip = 'pre, div.highlight, .cell_input, .cell_output, table, script, style, .math, .MathJax_Preview, '
             + '.MathJax, .MathJax_CHTML, .MathJax_Display, .headerlink, p.source-link, .toctree-wrapper';
  const walk = document.createTreeWalker(art, NodeFilter.SHOW_TEXT);
  let words = 0, n;
  while ((n = walk.nextNode()))
    if (!n.parentElement.closest(skip)) words += (n.textContent.match(/\\S*[\\p{L}\\p{N}]\\S*/gu) || []).length;
  const images = [...art.querySelectorAll('img')].map(i => ({
    src: i.getAttribute('src'), alt: i.getAttribute('alt'), natural: i.naturalWidth,
    shown: i.getBoundingClientRect().width, top: i.getBoundingClientRect().top + scrollY}));
  return {column, tables, words, images, height: document.documentElement.scrollHeight,
    toc: [...document.querySelectorAll('.toc-tree a')].map(a => a.textContent.trim()),
    icons: [...document.querySelectorAll('link[rel~="icon"]')].map(l => l.href),
    signatures: document.querySelectorAll('article .signature').length,
    signature_links: [...art.querySelectorAll('.signature pre a')].map(a => a.href),
    signature_markdown: [...art.querySelectorAll('.signature pre')].flatMap(
      p => p.textContent.match(/\\[[^\\]\\n]+\\]\\([^)\\s]+\\)/g) || [])};
}"""


@pytest.fixture(scope="module")
def layout(browser, server):
    "Every page at 1280 x 900, loaded with its images and math: the measures the tests below read, by notebook stem."
    ctx = browser.new_context(viewport=WIDE)
    ctx.route(lambda url: not url.startswith(server), lambda route: route.abort())
    page, out = ctx.new_page(), {}
    for p in PAGES:
        page.goto(f"{server}/{p['href']}", wait_until="load")
        page.evaluate(MATHJAX_DONE)
        out[p["stem"]] = dict(page.evaluate(LAYOUT), href=p["href"])
    ctx.close()
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "site-layout.json").write_text(json.dumps(out, indent=1), encoding="utf-8")
    return out


def test_sidebar_order_and_captions(visit, server):
    """The sidebar shows the pages in the reader's order under the captions of nbs/sidebar.yml: Tutorial (the
    walkthrough first), How-to and reference, Internals; the home page is the site's title above them."""
    want = [(cap, [s for s in stems if (NBS / f"{s}.ipynb").exists()]) for cap, stems in SIDEBAR.items()]
    listed = [(cap, [Path(n).stem for n in names]) for cap, names in _sidebar() if cap]
    assert listed == want, "nbs/sidebar.yml: the sections and their pages, in the reader's order"
    assert [names for cap, names in _sidebar() if not cap] == [["index.ipynb"]], "the home page first, alone"
    visit.goto(f"{server}/index.html")
    shown = visit.page.evaluate("""() => [...document.querySelectorAll('.sidebar-tree:not(.site-repo) p.caption')]
        .map(c => [c.textContent.trim(), [...c.nextElementSibling.querySelectorAll(':scope > li > a')]
        .map(a => new URL(a.href).pathname.split('/').pop())])""")
    href = {p["stem"]: p["href"] for p in PAGES}
    assert shown == [[cap, [href[s] for s in stems]] for cap, stems in want], "the sidebar as nbs/sidebar.yml has it"


def test_tables_fit_the_column(layout):
    "At 1280 px no table is wider than the page's column: what is measured is the table's whole (scroll) width."
    wide = [f"{p['href']}: {t['width']} px > {p['column']} px: {t['head']}"
            for p in layout.values() for t in p["tables"] if t["width"] > p["column"] + 1]
    assert not wide, f"{len(wide)} tables wider than the column (choose columns, split, transpose or round):\n" \
        + "\n".join(wide)


def test_word_budgets(layout):
    """Prose words per page (issue 28): walkthrough <= 1500, losses <= 2000, every other page outside Internals
    <= 2500. Counted on the rendered page at 1280 px, in the article: its headings, paragraphs, lists, notes and
    show_doc's docstrings count; code blocks and cells' inputs, cell outputs (computed text included), tables,
    math, show_doc's signature blocks, source links and navigation do not. A word is a run of non-space characters
    with a letter or digit in it (`focal_loss` is one word)."""
    internals = {Path(n).stem for cap, names in _sidebar() if cap == "Internals" for n in names}
    counts = {stem: (p["words"], BUDGETS.get(stem, BUDGET)) for stem, p in layout.items() if stem not in internals}
    print("\n".join(f"{s}: {w} words (budget {b})" for s, (w, b) in counts.items()))
    over = [f"{layout[s]['href']}: {w} > {b}" for s, (w, b) in counts.items() if w > b]
    assert not over, "pages over their word budget:\n" + "\n".join(over)


def test_losses_page_shows_its_first_figure_early(layout):
    "The losses page's first figure (the loss against p) starts within the first third of the page at 1280 px."
    page = layout["01_losses"]
    assert page["images"], "the losses page shows no figure"
    top = page["images"][0]["top"]
    assert top <= page["height"] / 3, f"first figure at {top:.0f} px of {page['height']} ({top / page['height']:.0%})"


def _dpi(path: Path):
    "The dpi matplotlib stored in a PNG it wrote (its pHYs chunk); None for any other image."
    from PIL import Image
    with Image.open(path) as im:
        if not str(im.info.get("Software", "")).startswith("Matplotlib"): return None
        return float(im.info.get("dpi", (100, 100))[0])


def test_figures_shown_near_the_size_they_were_drawn(layout, site):
    """matplotlib's default text (10 pt) must be at least 9 px on screen at 1280 px: a figure drawn wider than the
    column is scaled down, and its text with it. Figures from matplotlib only (their PNG says so and holds the dpi)."""
    small = []
    for p in layout.values():
        for im in p["images"]:
            src = Path(site) / unquote(im["src"] or "")
            if not im["natural"] or not src.is_file() or (dpi := _dpi(src)) is None: continue
            px = DEFAULT_PT * dpi / 72 * im["shown"] / im["natural"]
            if px < MIN_TEXT_PX:
                widest = im["shown"] * DEFAULT_PT * dpi / 72 / MIN_TEXT_PX
                small.append(f"{p['href']}: {src.name[:12]} drawn {im['natural']} px wide, shown at {im['shown']:.0f}:"
                             f" 10 pt text at {px:.1f} px; draw it at most {widest:.0f} px ({widest / dpi:.1f} in) wide")
    assert not small, "figures whose text is under 9 px at 1280 px:\n" + "\n".join(small)


def test_figures_have_alt_text(layout):
    "Every image in a page's article has alt text that says something: not empty, not a file name (`#| fig-alt:`)."
    bad = [f"{p['href']}: {im['src'][:40]} alt={im['alt']!r}" for p in layout.values() for im in p["images"]
           if not (im["alt"] or "").strip() or FILE_NAME.search(im["alt"].strip())]
    assert not bad, f"{len(bad)} images without alt text (add `#| fig-alt: what it shows` to the cell):\n" \
        + "\n".join(bad)


def test_fig_alt_lines_are_yaml():
    "Quarto reads `#|` lines as YAML: every `#| fig-alt:` in nbs/ must be a YAML string, not empty."
    bad = []
    for path in sorted(NBS.glob("*.ipynb")):
        for c in nbformat.read(path, as_version=4).cells:
            for line in re.findall(r"^#\|\s*fig-alt:.*$", c.source if c.cell_type == "code" else "", re.M):
                try: v = yaml.safe_load(line[2:])["fig-alt"]
                except yaml.YAMLError: v = None
                if not isinstance(v, str) or not v.strip(): bad.append(f"{path.name}: {line[:60]}")
    assert not bad, "fig-alt lines that are no YAML string (quote them, or leave out ': '):\n" + "\n".join(bad)


def test_one_contents_entry_per_function(layout, site):
    """A function has one entry in a page's contents and in the search index: show_doc's heading is dropped where the
    notebook's own heading just above names the same function."""
    ident = re.compile(r"^[A-Za-z_][\w.]*$")
    dup = [f"{p['href']}: {t}" for p in layout.values() for t in sorted(set(p["toc"]))
           if ident.match(t) and p["toc"].count(t) > 1]
    assert not dup, "listed twice in the contents:\n" + "\n".join(dup)
    index = json.loads(re.search(r"Search\.setIndex\((.*)\)", (Path(site) / "searchindex.js").read_text())[1])
    twice = [f"{index['docnames'][doc]}: {title}" for title, places in index["alltitles"].items() if ident.match(title)
             for doc in {d for d, _ in places} if sum(d == doc for d, _ in places) > 1]
    assert not twice, "listed twice in the search index:\n" + "\n".join(twice)


def test_favicon(layout, site):
    "Every page links the favicon (nbs/favicon.svg, which _quarto.yml names too), and the file is in the site."
    for p in layout.values():
        assert p["icons"], f"{p['href']}: no <link rel=icon>"
        assert all((Path(site) / unquote(urlsplit(h).path).lstrip("/")).is_file() for h in p["icons"]), p["icons"]
    quarto = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
    assert (NBS / quarto["website"]["favicon"]).is_file(), "_quarto.yml's favicon, beside the notebooks"


def test_signature_comments_show_links_not_markdown(layout):
    "docments comments in show_doc's signatures render their links: no `[`name`](page.ipynb#name)` left as text."
    raw = [f"{p['href']}: {m}" for p in layout.values() for m in p["signature_markdown"]]
    assert not raw, "Markdown links shown as text in signatures:\n" + "\n".join(raw)
    assert sum(p["signatures"] for p in layout.values()) > 20, "show_doc's signature blocks are marked .signature"
    assert any(p["signature_links"] for p in layout.values()), "the signatures' links are links"
    assert all(urlsplit(h).path.endswith(".html") for p in layout.values() for h in p["signature_links"])


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


def test_deploy_workflow_publishes_the_tested_site():
    "One site: GitHub Pages gets what `make site` builds into _docs/ (Sphinx) and these tests check, not nbdev_docs."
    wf, steps = _workflow("deploy.yaml")
    uses = [s.get("uses", "").split("@")[0] for s in steps]
    runs = [s.get("run", "") for s in steps]
    assert "make site" in runs and "actions/deploy-pages" in uses, (runs, uses)
    assert not any("quarto" in u for u in uses) and not any("nbdev_docs" in r for r in runs), "no Quarto build"
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert upload["with"]["path"] == "_docs" == _ini("doc_path"), "the folder make site writes"
    assert wf["permissions"]["pages"] == "write" and wf["permissions"]["id-token"] == "write"


def _ini(key):
    import configparser
    ini = configparser.ConfigParser()
    ini.read(ROOT / "settings.ini")
    return ini["DEFAULT"][key]


def test_sidebar_sections_become_captions(build_site, tmp_path, monkeypatch):
    "nbs/sidebar.yml's Quarto sections are the build's groups; a listed notebook that does not exist yet is left out."
    (tmp_path / "sidebar.yml").write_text(yaml.safe_dump({"website": {"sidebar": {"contents": [
        "index.ipynb", {"section": "Tutorial", "contents": ["b.ipynb", "new.ipynb", {"section": "x", "contents": ["c.ipynb"]}]},
        {"section": "Internals", "contents": ["a.ipynb"]}]}}}))
    for n in ("index", "a", "b", "c", "unlisted"): (tmp_path / f"{n}.ipynb").write_text("{}")
    groups = build_site.sidebar(tmp_path)
    assert [(cap, [p.name for p in ps]) for cap, ps in groups] == [
        (None, ["index.ipynb"]), ("Tutorial", ["b.ipynb", "c.ipynb"]), ("Internals", ["a.ipynb"])]
    assert [p.name for p in build_site.pages(tmp_path)] == ["index.ipynb", "b.ipynb", "c.ipynb", "a.ipynb"]


def test_cell_options_read_fig_alt(build_site):
    "`#|` lines are YAML, as Quarto reads them; a fig-alt with a colon in it is kept as its text, not an error."
    opts = build_site.cell_options(["#| echo: false", "#| fig-alt: Recall per class: cross-entropy against focal",
                                    '#| fig-cap: "a: b"', "#| hide"])
    assert opts == {"echo": False, "fig-alt": "Recall per class: cross-entropy against focal", "fig-cap": "a: b",
                    "hide": True}


def test_link_signatures(build_site, tmp_path):
    "Markdown links in a signature's comments become links when their page and anchor exist, else plain names."
    sig = ('<div class="signature highlight-python notranslate"><div class="highlight"><pre><span></span>'
           '<span class="k">def</span> <span class="nf">f</span>(\n    <span class="n">runs</span>, '
           '<span class="c1"># the output of [`sweep`](study.ipynb#sweep), see [`gone`](study.ipynb#gone)</span>\n)'
           '</pre></div></div><pre><span class="c1"># [`sweep`](study.ipynb#sweep) in code stays</span></pre>')
    (tmp_path / "a.html").write_text(sig)
    (tmp_path / "study.html").write_text('<section id="sweep"></section>')
    assert build_site.link_signatures(tmp_path) == 1
    out = (tmp_path / "a.html").read_text()
    assert '<a class="reference signature-link" href="study.html#sweep">sweep</a>, see gone</span>' in out
    assert "# [`sweep`](study.ipynb#sweep) in code stays" in out, "only show_doc's signature blocks change"


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
