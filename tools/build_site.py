"""Execute the notebooks and build the documentation site and README.md, with or without Quarto.

    python tools/build_site.py --execute          # what `make docs` runs: execute every notebook, then build
    python tools/build_site.py                    # build from the committed outputs (no execution)
    python tools/build_site.py --execute --only 00_core   # execute and render one page (repeatable)
    python tools/build_site.py --readme           # only README.md from nbs/index.ipynb
    python tools/build_site.py --readme --check   # exit 1 (with a diff) when README.md is not what index gives

Pages are the notebooks of nbs/sidebar.yml, in its order (listed notebooks that do not exist yet are skipped
with a warning). Executing runs each notebook in place with nbclient (the `python3` kernel of this
interpreter, cwd nbs/, full size: FOCAL_TUTORIAL_SMOKE unset, hubs offline), then `nbdev_clean` (outputs kept).

With Quarto on PATH the site is nbdev's own `nbdev_docs` (it finds the top-level _quarto.yml through the
symbolic link nbs/_quarto.yml). Without Quarto: nbdev's processing (`nbdev.serve.proc_nbs`: front matter,
`show_doc` tables, hidden cells removed), then nbconvert's HTMLExporter (lab template, extended below with the
navigation) writes one page per notebook under the name Quarto would give it (front matter `output-file`,
e.g. 00_core.ipynb -> core.html). Plots are embedded as data URIs; links between notebooks (.ipynb) and
nbdev's links to the published site are made relative, so the site works from file:// and from any static
server. README.md is always the processed index notebook as markdown (nbconvert), Quarto or not.
"""
from __future__ import annotations

import argparse
import difflib
import html
import os
import re
import shutil
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlsplit

import nbformat
import yaml
from jinja2 import DictLoader
from nbconvert import HTMLExporter, MarkdownExporter
from nbdev.config import get_config
from nbdev.doclinks import _nbpath2html
from nbdev.frontmatter import FrontmatterProc
from nbdev.process import NBProcessor
from nbdev.serve import proc_nbs
from traitlets.config import Config

ROOT = Path(__file__).resolve().parents[1]

# The lab template plus a navigation bar; require.js (only for widgets, which no page has) is dropped so a
# page loads nothing it does not need. MathJax stays (formulas), from its CDN as in Quarto's pages.
PAGE_TEMPLATE = r"""{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{% block extra_css %}
<style type="text/css">
body.jp-Notebook { display: flex; align-items: flex-start; margin: 0; padding: 0; }
nav.site-nav { position: sticky; top: 0; flex: 0 0 15rem; height: 100vh; overflow-y: auto; box-sizing: border-box;
  padding: 1.5rem 1rem; border-right: 1px solid #e5e5e5; background: #f8f9fa; font-family: var(--jp-ui-font-family); }
nav.site-nav .site-title { display: block; font-weight: 600; font-size: 1.15rem; margin-bottom: 1rem; color: #2c3e50; text-decoration: none; }
nav.site-nav ul { list-style: none; margin: 0; padding: 0; }
nav.site-nav li a { display: block; padding: 0.3rem 0.5rem; border-radius: 4px; color: #2c3e50; text-decoration: none; }
nav.site-nav li a:hover { background: #e9ecef; }
nav.site-nav li a[aria-current="page"] { background: #2780e3; color: #fff; }
body.jp-Notebook > main { flex: 1 1 auto; min-width: 0; max-width: 60rem; padding: 1rem 2rem 3rem; }
main > h1.title, div.page-description { font-family: var(--jp-content-font-family); }
div.page-description p { font-style: italic; font-size: 1.2rem; opacity: 0.7; margin-top: 0; }
details.code-fold > summary { cursor: pointer; color: #555; font-size: 0.9rem; }
@media (max-width: 50rem) { body.jp-Notebook { display: block; } nav.site-nav { position: static; height: auto; } }
</style>
{% endblock extra_css %}
{%- block body_header -%}
<body class="jp-Notebook" data-jp-theme-light="true" data-jp-theme-name="JupyterLab Light">
<nav class="site-nav" aria-label="Pages">
<a class="site-title" href="index.html">{{ resources.site.title | e }}</a>
<ul>
{%- for p in resources.site.pages %}
<li><a href="{{ p.href }}"{% if p.current %} aria-current="page"{% endif %}>{{ p.title | e }}</a></li>
{%- endfor %}
</ul>
</nav>
<main>
<h1 class="title" id="title">{{ resources.site.page_title | e }}</h1>
{%- if resources.site.description %}
<div class="page-description">{{ resources.site.description | markdown2html }}</div>
{%- endif %}
{%- endblock body_header -%}
{% block input_group -%}
{%- if cell.metadata.get('code_fold') -%}
<details class="code-fold"{% if cell.metadata.code_fold == 'show' %} open{% endif %}>
<summary>{{ cell.metadata.get('code_summary', 'Code') | e }}</summary>
{{ super() }}
</details>
{%- else -%}
{{ super() }}
{%- endif -%}
{%- endblock input_group %}
"""


def _warn(msg: str) -> None:
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


def log_time(what: str, seconds: float) -> None:
    print(f"[time] {what}: {seconds:.1f} s", flush=True)


@contextmanager
def timed(what: str):
    t0 = time.perf_counter()
    yield
    log_time(what, time.perf_counter() - t0)


# ---------------------------------------------------------------------------------------------------- pages

def _flatten(contents) -> list[str]:
    "Notebook paths of a Quarto sidebar `contents` list (strings, {href: ...} or {section: ..., contents: [...]})."
    out = []
    for item in contents or []:
        if isinstance(item, str): out.append(item)
        elif isinstance(item, dict):
            if "href" in item: out.append(item["href"])
            out += _flatten(item.get("contents"))
    return out


def sidebar_notebooks(nbs: Path) -> list[Path]:
    "The notebooks of nbs/sidebar.yml in its order, those that exist; a warning for each that does not."
    sidebar = yaml.safe_load((nbs / "sidebar.yml").read_text(encoding="utf-8"))
    listed = [n for n in _flatten(sidebar["website"]["sidebar"]["contents"]) if n.endswith(".ipynb")]
    present = []
    for name in listed:
        if (nbs / name).exists(): present.append(nbs / name)
        else: _warn(f"nbs/sidebar.yml lists {name}, which does not exist (yet): skipped")
    extra = sorted(set(nbs.glob("[!_.]*.ipynb")) - set(present))
    for p in extra: _warn(f"{p.name} is not in nbs/sidebar.yml: rendered last in the navigation")
    return present + extra


def page_info(nb_path: Path) -> dict:
    "Title, description and output file of a notebook, read the way nbdev's processing reads them (no execution)."
    proc = NBProcessor(nb_path, procs=[FrontmatterProc])
    proc.nb.path_ = str(nb_path)
    proc.process()
    fm = dict(proc.nb.frontmatter_)
    return {"src": nb_path.name, "stem": nb_path.stem, "title": str(fm.get("title", nb_path.stem)),
            "description": fm.get("description"), "href": fm.get("output-file") or _nbpath2html(nb_path).name}


def _select(pages: list[dict], only: list[str] | None) -> list[dict]:
    if not only: return pages
    keys = {k.removesuffix(".ipynb") for k in only}
    sel = [p for p in pages if p["stem"] in keys or p["href"].removesuffix(".html") in keys]
    missing = keys - {p["stem"] for p in sel} - {p["href"].removesuffix(".html") for p in sel}
    if missing: raise SystemExit(f"--only: no notebook {sorted(missing)} among {[p['stem'] for p in pages]}")
    return sel


# ------------------------------------------------------------------------------------------------- execute

def execute(nb_paths: list[Path], nbs: Path, timeout: int | None = None) -> None:
    "Run each notebook in place at full size (cwd nbs/), then nbdev_clean it, keeping the outputs."
    from nbclient import NotebookClient
    from nbdev.clean import nbdev_clean
    os.environ.pop("FOCAL_TUTORIAL_SMOKE", None)  # the site shows full-size runs
    os.environ.pop("MPLBACKEND", None)  # Agg (set by the Makefile for the tests) would leave every plot out
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"): os.environ.setdefault(k, "1")
    for p in nb_paths:
        with timed(f"execute {p.name}"):
            nb = nbformat.read(p, as_version=4)
            NotebookClient(nb, kernel_name="python3", timeout=timeout,
                           resources={"metadata": {"path": str(nbs)}}).execute()
            nbformat.write(nb, p)
            nbdev_clean.__wrapped__(fname=str(p))


# ----------------------------------------------------------------------------------------------- processing

def process(nbs: Path, names: list[str] | None = None) -> Path:
    "nbdev's processing of the notebooks into _proc/ (all of them, or only `names`), rebuilt from scratch."
    # force: nbdev's cache compares file times with its folder's, which a partial run would leave misleading.
    kw = {} if names is None else {"skip_file_re": "^(?!(" + "|".join(re.escape(n) for n in names) + r")$)"}
    return proc_nbs(str(nbs), n_workers=0 if names and len(names) == 1 else min(2, os.cpu_count() or 1),
                    force=True, **kw)


def front_matter(nb) -> dict:
    "The YAML front matter nbdev's processing puts in a notebook's first raw cell."
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().startswith("---"):
            return yaml.safe_load(cell.source.strip().strip("-")) or {}
    return {}


# ----------------------------------------------------------------------------------------------------- README

def readme_markdown(proc: Path) -> str:
    "README text: the processed index notebook as markdown, headed by its title and description."
    cfg = get_config()
    nb = nbformat.read(proc / cfg.readme_nb, as_version=4)
    fm = front_matter(nb)
    nb.cells = [c for c in nb.cells if c.cell_type != "raw"]
    nb.metadata["language_info"] = {"name": "python"}  # fenced code blocks say ```python, as Quarto's do
    body, _ = MarkdownExporter().from_notebook_node(nb)
    # links between notebooks are relative to nbs/; README.md sits at the top, where GitHub renders nbs/*.ipynb
    nbs = Path(cfg.nbs_path).resolve().relative_to(Path(cfg.config_path).resolve()).as_posix()
    body = re.sub(r"\]\((?!\w+:|/|#)([^)\s]+\.ipynb)", rf"]({nbs}/\1", body)
    head = f"# {fm.get('title', cfg.lib_name)}\n\n"
    if fm.get("description"): head += f"> {fm['description']}\n\n"
    return re.sub(r"\n{3,}", "\n\n", head + body).strip() + "\n"


def build_readme(proc: Path | None = None, check: bool = False) -> Path:
    "Write README.md from the processed index notebook; with `check`, compare instead and exit 1 on a difference."
    cfg = get_config()
    proc = proc or process(cfg.nbs_path, [cfg.readme_nb])
    out, text = ROOT / "README.md", readme_markdown(proc)
    if check:
        old = out.read_text(encoding="utf-8") if out.exists() else ""
        if old != text:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                       "README.md (committed)", "README.md (from nbs/index.ipynb)"))
            raise SystemExit("README.md differs from what nbs/index.ipynb gives: run `python tools/build_site.py --readme`")
        return out
    out.write_text(text, encoding="utf-8")
    return out


# ------------------------------------------------------------------------------------------ site (no Quarto)

_PANDOC_LINK = re.compile(r"\[([^\]]+)\]\(([^)\s]+)\)\{([^}]*)\}")  # show_doc's [source](url){target=...}


def _cell_options(cell) -> dict:
    "Quarto's `#| key: value` cell options (YAML), removed from the source as Quarto does; nbdev's are left to it."
    lines = cell.source.splitlines()
    n = next((i for i, l in enumerate(lines) if not l.startswith("#|")), len(lines))
    opts = {}
    for line in lines[:n]:
        try: d = yaml.safe_load(line[2:])
        except yaml.YAMLError: continue
        if isinstance(d, dict): opts.update(d)
    cell.source = "\n".join(lines[n:])
    return opts


def _prepare(nb) -> None:
    "Turn the processed notebook's Quarto conventions into what nbconvert understands."
    nb.cells = [c for c in nb.cells if not (c.cell_type == "raw" and c.source.lstrip().startswith("---"))]
    for cell in nb.cells:
        if cell.cell_type != "code": continue
        opts, tags = _cell_options(cell), set(cell.metadata.get("tags", []))
        if opts.get("include") is False: tags.add("remove_cell")
        if opts.get("echo") is False: tags.add("remove_input")
        if opts.get("output") is False: tags.add("remove_output")
        if opts.get("code-fold"):
            cell.metadata["code_fold"] = "show" if opts["code-fold"] == "show" else "hide"
            cell.metadata["code_summary"] = str(opts.get("code-summary", "Code"))
        cell.metadata["tags"] = sorted(tags)
        for out in cell.get("outputs", []):
            md = out.get("data", {}).get("text/markdown")
            if md is not None:
                md = "".join(md) if isinstance(md, list) else md
                out["data"]["text/markdown"] = _PANDOC_LINK.sub(r"[\1](\2)", md)  # no pandoc attributes


def _link_rewriter(pages: list[dict], site_url: str):
    "A function that makes links to notebooks and to the published site relative links to the built pages."
    by_nb = {p["src"]: p["href"] for p in pages}
    hrefs = {p["href"] for p in pages}
    attr = re.compile(r'\b(href|src)="([^"]*)"')

    def fix(m):
        url = html.unescape(m[2])
        parts = urlsplit(url)
        frag = f"#{parts.fragment}" if parts.fragment else ""
        name = parts.path.rsplit("/", 1)[-1]
        if not parts.scheme and not parts.netloc and name in by_nb: new = by_nb[name] + frag
        elif site_url and url.startswith(site_url + "/") and name in hrefs: new = name + frag
        else: return m[0]
        return f'{m[1]}="{html.escape(new)}"'
    return lambda text: attr.sub(fix, text)


def _quarto_ids(text: str) -> str:
    "Heading ids as Quarto (pandoc) makes them and nbdev's links to symbols expect: lower case, no punctuation."
    seen, renamed = set(), {}

    def heading(m):
        old = unquote(html.unescape(m[3]))  # nbconvert percent-encodes its ids
        new = re.sub(r"[^\w\-.]", "", old).lower().lstrip("0123456789-.") or old
        if new in seen: new = old
        seen.add(new)
        renamed[m[3]] = html.escape(new)
        return f'<h{m[1]}{m[2]}id="{renamed[m[3]]}"'
    text = re.sub(r'<h([1-6])([^>]*?)\bid="([^"]*)"', heading, text)
    return re.sub(r'href="#([^"]*)"', lambda m: f'href="#{renamed.get(m[1], m[1])}"', text)


def render_site(proc: Path, pages: list[dict], out: Path, nav: list[dict] | None = None) -> None:
    "One HTML page per processed notebook in `pages`, each with the navigation `nav` (default: `pages`)."
    cfg, nav = get_config(), nav or pages
    quarto = yaml.safe_load((cfg.nbs_path / "nbdev.yml").read_text(encoding="utf-8"))["website"]
    site_title, site_url = quarto.get("title", cfg.lib_name), str(quarto.get("site-url", "")).rstrip("/")
    rewrite = _link_rewriter(nav, site_url)
    c = Config()
    c.HTMLExporter.preprocessors = ["nbconvert.preprocessors.TagRemovePreprocessor"]
    c.TagRemovePreprocessor.update(remove_cell_tags={"remove_cell"}, remove_input_tags={"remove_input"},
                                   remove_all_outputs_tags={"remove_output"})
    exporter = HTMLExporter(config=c, template_name="lab", template_file="site.html.j2",
                            extra_loaders=[DictLoader({"site.html.j2": PAGE_TEMPLATE})],
                            embed_images=True, exclude_input_prompt=True, exclude_output_prompt=True)
    out.mkdir(parents=True, exist_ok=True)
    for page in pages:
        with timed(f"render {page['href']}"):
            nb = nbformat.read(proc / page["src"], as_version=4)
            fm = front_matter(nb)
            _prepare(nb)
            title = str(fm.get("title", page["title"]))
            nb.metadata["title"] = title
            resources = {"metadata": {"name": title, "path": str(cfg.nbs_path)},
                         "site": {"title": site_title, "page_title": title, "description": fm.get("description"),
                                  "pages": [dict(p, current=p["href"] == page["href"]) for p in nav]}}
            body, _ = exporter.from_notebook_node(nb, resources=resources)
            (out / page["href"]).write_text(rewrite(_quarto_ids(body)), encoding="utf-8")


def quarto_docs() -> None:
    "nbdev's own nbdev_docs (Quarto): it processes nbs/ and renders with nbs/_quarto.yml -> ../_quarto.yml."
    from nbdev.quarto import nbdev_docs
    shutil.rmtree(get_config().config_path / "_proc", ignore_errors=True)  # nbdev's cache trusts file times
    nbdev_docs.__wrapped__()


# ------------------------------------------------------------------------------------------------------ main

def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--execute", action="store_true", help="execute the notebooks (in place) before building")
    ap.add_argument("--readme", action="store_true", help="only regenerate README.md from nbs/index.ipynb")
    ap.add_argument("--check", action="store_true", help="with --readme: fail with a diff instead of writing")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="only this notebook (e.g. 00_core or core; repeatable): execute and render its page")
    ap.add_argument("--out", type=Path, help="site folder (default: doc_path of settings.ini, _docs/)")
    ap.add_argument("--no-quarto", action="store_true", help="build without Quarto even if it is on PATH")
    ap.add_argument("--no-readme", action="store_true", help="do not write README.md")
    ap.add_argument("--timeout", type=int, default=None, help="seconds per cell when executing (default: none)")
    args = ap.parse_args(argv)
    os.chdir(ROOT)  # nbdev finds settings.ini from the working directory
    cfg = get_config()
    nbs = cfg.nbs_path
    t_all = time.perf_counter()

    if args.readme:
        with timed("README.md"): print(("checked " if args.check else "wrote ") + str(build_readme(check=args.check)))
        return

    pages = [page_info(p) for p in sidebar_notebooks(nbs)]
    selected = _select(pages, args.only)
    if args.execute: execute([nbs / p["src"] for p in selected], nbs, args.timeout)

    out = (args.out or cfg.doc_path).resolve()
    if shutil.which("quarto") and not args.no_quarto and args.out is None:
        print("== Quarto found: nbdev_docs (nbs/_quarto.yml -> _quarto.yml)")
        with timed("nbdev_docs (Quarto)"): quarto_docs()
        proc = cfg.config_path / "_proc"
    else:
        print(f"== building the site without Quarto: nbdev processing + nbconvert HTML into {out}")
        names = None if not args.only else [p["src"] for p in selected] + [cfg.readme_nb]
        with timed("nbdev processing (proc_nbs)"): proc = process(nbs, names)
        if not args.only and out.exists(): shutil.rmtree(out)
        render_site(proc, selected, out, nav=pages)
        (out / ".nojekyll").touch()
    if not args.no_readme:
        with timed("README.md"): print("wrote", build_readme(proc))
    log_time("total", time.perf_counter() - t_all)
    print(f"site: {out / 'index.html'}")


if __name__ == "__main__":
    main()
