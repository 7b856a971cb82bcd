"""Docs glue: `make docs` (--execute: run every notebook first), `make site` (render only), `make readme` (--readme).

One site, with or without Quarto on PATH: nbdev's processing (`proc_nbs`: front matter, `show_doc`, hidden cells
removed) feeds Sphinx + myst-nb (docs/conf.py; the stored outputs are shown, none run). That is the site that
tests/test_site.py checks and .github/workflows/deploy.yaml publishes. `_quarto.yml` stays for nbdev's own tools
(`nbdev_preview`), which render the same notebooks with Quarto.
"""
import argparse, difflib, html, json, os, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path

import nbformat, yaml
from nbdev.config import get_config

ROOT = Path(__file__).resolve().parents[1]
MATHJAX = Path("/usr/share/javascript/mathjax")  # Debian's libjs-mathjax (make setup installs it)
MATHJAX_PARTS = ["MathJax.js", "config/TeX-AMS_CHTML.js", "extensions", "jax/input/TeX", "jax/output/CommonHTML",
                 "jax/element", "fonts/HTML-CSS/TeX/woff", "localization/en"]
SRC_LINK = re.compile(r"\[source\]\(([^)\s]+)\)\{[^}]*\}\s*\n+(#+ .*\n)")  # show_doc's link, above its heading


def step(msg): print(f"== {msg}", flush=True)


def sidebar(nbs: Path) -> list[tuple[str | None, list[Path]]]:
    """nbs/sidebar.yml as (caption, notebooks) groups, in its order. A Quarto `section` is one group under its
    caption (a section inside a section joins its parent's); pages outside any section group without a caption.
    Notebooks listed but missing (a page being written) and notebooks not listed are noted and left out."""
    def flat(items):
        for it in items or []:
            if isinstance(it, str): yield it
            elif isinstance(it, dict): yield from ([it["href"]] if "href" in it else []) + list(flat(it.get("contents")))
    side = yaml.safe_load((nbs / "sidebar.yml").read_text(encoding="utf-8"))["website"]["sidebar"]["contents"]
    groups: list[tuple[str | None, list[str]]] = []
    for it in side or []:
        if isinstance(it, dict) and "section" in it: groups.append((str(it["section"]), list(flat(it.get("contents")))))
        elif groups and groups[-1][0] is None: groups[-1][1].extend(flat([it]))
        else: groups.append((None, list(flat([it]))))
    listed = [nbs / n for _, names in groups for n in names if n.endswith(".ipynb")]
    for p in sorted(set(listed) ^ set(nbs.glob("[!_.]*.ipynb"))):
        print(f"   note: {p.name} is {'missing' if p in listed else 'not in nbs/sidebar.yml'}: not a page", flush=True)
    return [(cap, [nbs / n for n in names if n.endswith(".ipynb") and (nbs / n).exists()]) for cap, names in groups]


def pages(nbs: Path) -> list[Path]:
    "The notebooks of nbs/sidebar.yml, in its order."
    return [p for _, paths in sidebar(nbs) for p in paths]


def execute(paths: list[Path], nbs: Path) -> None:
    "Run each notebook at full size; write it back (cleaned as nbdev_clean does) only if its content changed."
    from execnb.nbio import nb2str
    from jupyter_client import KernelManager
    from nbclient import NotebookClient
    from nbdev.clean import _nbdev_clean
    for k in ("FOCAL_TUTORIAL_SMOKE", "MPLBACKEND"): os.environ.pop(k, None)  # full-size runs; Agg would drop plots
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"): os.environ.setdefault(k, "1")
    for p in paths:
        t0, nb = time.perf_counter(), nbformat.read(p, as_version=4)
        with tempfile.TemporaryDirectory() as tmp:  # IPC, not TCP: no "running over TCP without encryption"
            km = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(tmp) / "k"))
            try: NotebookClient(nb, km=km, timeout=None, resources={"metadata": {"path": str(nbs)}}).execute()
            finally: km.shutdown_kernel(now=True)
        d = json.loads(nbformat.writes(nb)); _nbdev_clean(d)  # plain dicts, cleaned as nbdev_clean cleans a file
        new = nb2str(d); changed = new != p.read_text(encoding="utf-8")
        if changed: p.write_text(new, encoding="utf-8")
        print(f"   {p.name}: run in {time.perf_counter() - t0:.0f} s, {'updated' if changed else 'unchanged'}", flush=True)


def process(names: list[str]) -> Path:
    "nbdev's processing of the notebooks `names` into _proc/ (rebuilt: nbdev's cache trusts file times)."
    from nbdev.serve import proc_nbs
    keep = "|".join(re.escape(n) for n in names)
    os.environ.setdefault("PYTHONWARNINGS", "ignore:Found cells containing imports")  # a note per cell, in full
    try: return Path(proc_nbs(force=True, skip_file_re=rf"^(?!({keep})$)", n_workers=min(2, len(names) - 1)))
    except Exception as e:  # the gist, not two pages of tracebacks from the worker processes
        why, x = [], e
        while x: why += re.findall(r"^\w*(?:Error|Exception): .*", f"{type(x).__name__}: {x}", re.M); x = x.__cause__
        raise SystemExit("nbdev's processing (it runs each notebook's import, export and show_doc cells) failed:\n   "
                         + "\n   ".join(dict.fromkeys(why)) + "\nIt also runs every cell that mixes imports with other code: keep imports "
                         "in cells of their own. Run the notebook to see the whole error.") from None


def front_matter(nb) -> dict:
    raw = [c.source for c in nb.cells if c.cell_type == "raw" and c.source.lstrip().startswith("---")]
    return yaml.safe_load(raw[0].strip().strip("-")) or {} if raw else {}


def fix_md(text: str, names: dict, site_url: str) -> str:
    "Markdown for Sphinx: links between notebooks and to the published site become page links; show_doc tidied."
    text = SRC_LINK.sub(lambda m: f"{m[2]}\n{{.source-link}}\n[source]({m[1]})\n", text)
    text = re.sub(r"(\w+):NoneType=None", r"\1=None", text)  # a default of None is no type
    stems = {Path(v).stem for v in names.values()}

    def link(m):
        new = names.get(m[2] + ".ipynb") if m[3] == "ipynb" else m[2] + ".ipynb" if m[2] in stems else None
        return f"]({new}" if new else m[0]
    site = f"{re.escape(site_url)}/|" if site_url else ""
    return re.sub(rf"\]\(({site}\./)?([\w.-]+)\.(html|ipynb)(?=[#)])", link, text)


def cell_options(lines: list[str]) -> dict:
    """A code cell's `#| key: value` lines as a dict. Each line is YAML, as Quarto reads it; a line that is no
    one-key YAML (a `fig-alt` with ": " in it) keeps its value as text. A bare `#| hide` is True."""
    opts = {}
    for line in lines:
        try: d = yaml.safe_load(line[2:])
        except yaml.YAMLError: d = None
        if isinstance(d, dict) and len(d) == 1 and not isinstance(next(iter(d.values())), dict): opts.update(d)
        elif isinstance(d, str) and ":" not in line: opts[d.strip()] = True
        else:
            key, _, value = line[2:].partition(":")
            opts[key.strip()] = value.strip()
    return opts


def plain_heading(text: str) -> str:
    "A heading's words without its markup: `[`x`](page#x)` and `` `x` `` read `x`."
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)
    return re.sub(r"[`*]|\{[^}]*\}\s*$", "", text).strip()


def headings(md: str) -> list[str]:
    "The ATX headings of a markdown text, fenced code left out."
    return re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.sub(r"^```.*?^```", "", md, flags=re.M | re.S), re.M)


def to_sphinx(proc: Path, nb_paths: list[Path], src: Path, groups: list | None = None) -> None:
    """Processed notebooks -> Sphinx sources named as Quarto names the pages (00_core.ipynb -> core.ipynb).

    The home page gets one hidden toctree per group of nbs/sidebar.yml (`groups`, as `sidebar` returns them; default:
    all pages, no caption), with the group's caption. A show_doc whose heading repeats the section heading just
    above it (`## focal_loss` written in the notebook, then show_doc's `### focal_loss`) loses its heading: one
    contents and search entry per function. show_doc's signature block is marked `.signature` (for `link_signatures`),
    and `#| fig-alt: ...` becomes the alt text of the cell's images."""
    site_url = str(yaml.safe_load((ROOT / "nbs/nbdev.yml").read_text())["website"].get("site-url", "")).rstrip("/")
    nbs = {p.name: nbformat.read(proc / p.name, as_version=4) for p in nb_paths}
    fms = {n: front_matter(nb) for n, nb in nbs.items()}
    names = {n: Path(fm.get("output-file") or n).stem + ".ipynb" for n, fm in fms.items()}
    shutil.rmtree(src, ignore_errors=True); src.mkdir(parents=True)
    for name, nb in nbs.items():
        fm, cells = fms[name], []
        head = f"# {fm.get('title', Path(name).stem)}\n"
        if fm.get("description"): head += f"\n{{.page-description}}\n{fm['description']}\n"
        cells.append(nbformat.v4.new_markdown_cell(head))
        self_link = re.compile(rf"\[(`[^`\]]+`)\]\({re.escape(Path(names[name]).stem)}\.(?:ipynb|html)#[^)\s]*\)")
        section = ""  # the words of the last heading so far
        for c in nb.cells:
            if c.cell_type == "raw" and c.source.lstrip().startswith("---"): continue
            if c.cell_type == "markdown":
                c.source = fix_md(c.source, names, site_url)
                c.source = re.sub(r"^#{1,6}\s.*$", lambda m: self_link.sub(r"\1", m[0]), c.source, flags=re.M)
                section = next((plain_heading(h) for h in reversed(headings(c.source))), section)
            if c.cell_type == "code":
                lines = c.source.splitlines()
                n = next((i for i, l in enumerate(lines) if not l.startswith("#|")), len(lines))
                opts = cell_options(lines[:n])
                c.source, tags = "\n".join(lines[n:]), set(c.metadata.get("tags", []))
                if opts.get("output") == "asis":  # markdown output (show_doc): part of the page's text
                    md = [o["data"]["text/markdown"] for o in c.outputs if "text/markdown" in o.get("data", {})]
                    for m in md:
                        m = fix_md(m.lstrip().removeprefix("---"), names, site_url)
                        m = re.sub(r"^```python\n(?=(?:async\s+)?(?:def|class)\s)", "{.signature}\n```python\n", m, flags=re.M)
                        first = headings(m)[:1]
                        if first and plain_heading(first[0]) == section:  # the notebook's heading names it already
                            m = re.sub(rf"^#{{1,6}}\s+{re.escape(first[0])}\s*#*\s*$\n?", "", m, count=1, flags=re.M)
                        elif first: section = plain_heading(first[0])
                        cells.append(nbformat.v4.new_markdown_cell(m))
                    continue
                tags |= {t for k, v, t in [("include", False, "remove-cell"), ("echo", False, "remove-input"),
                                            ("output", False, "remove-output")] if opts.get(k) == v}
                if opts.get("code-fold"): tags.add("hide-input")
                if opts.get("fig-alt"):  # myst-nb's cell-level image options
                    c.metadata.setdefault("mystnb", {}).setdefault("image", {})["alt"] = str(opts["fig-alt"]).strip()
                c.metadata["tags"] = sorted(tags)
            cells.append(c)
        if name == get_config().readme_nb:  # the page order and captions of nbs/sidebar.yml
            for caption, paths in groups if groups is not None else [(None, [proc / n for n in nbs])]:
                stems = [Path(names[p.name]).stem for p in paths if p.name in nbs and p.name != name]
                if not stems: continue
                cap = f":caption: {caption}\n" if caption else ""
                cells.append(nbformat.v4.new_markdown_cell("```{toctree}\n:hidden:\n" + cap + "\n" + "\n".join(stems) + "\n```"))
        nb.cells = cells
        nbformat.write(nb, src / ("index.ipynb" if name == get_config().readme_nb else names[name]))


MD_LINK = re.compile(r"\[([^\]\n]+)\]\(([^)\s]+)\)")


def link_signatures(out: Path) -> int:
    """In the rendered show_doc signatures, the docments comments' Markdown links (``[`sweep`](study.ipynb#sweep)``,
    which Pygments shows as text) become links: to the page's .html when the target exists, else the plain name."""
    ids = {f.name: set(re.findall(r'\bid="([^"]+)"', f.read_text(encoding="utf-8"))) for f in out.glob("*.html")}

    def anchor(m):
        text, url = html.unescape(m[1]).strip("`"), html.unescape(m[2])
        if not re.match(r"\w+:", url):  # a page of this site: study.ipynb#sweep -> study.html#sweep
            page, _, frag = url.partition("#")
            page = re.sub(r"\.ipynb$", ".html", page)
            if page not in ids or (frag and frag not in ids[page]): return html.escape(text)
            url = page + (f"#{frag}" if frag else "")
        return f'<a class="reference signature-link" href="{html.escape(url)}">{html.escape(text)}</a>'

    def block(m):
        return re.sub(r'(<span class="c1?">)(.*?)(</span>)', lambda c: c[1] + MD_LINK.sub(anchor, c[2]) + c[3], m[0])
    n = 0
    for f in out.glob("*.html"):
        text = f.read_text(encoding="utf-8")
        new = re.sub(r'<div class="signature[^"]*">.*?</pre>', block, text, flags=re.S)
        if new != text: f.write_text(new, encoding="utf-8"); n += 1
    return n


def break_headers(out: Path) -> None:
    """Table headers (`balanced_accuracy`, `ece/nll`) may wrap after "_" and "/": a data frame's column names are
    what makes it wider than the page, and CSS breaks words only at spaces or anywhere."""
    brk = lambda m: m[1] + re.sub(r"(?<=\w)([_/])(?=\w)", r"\1<wbr>", m[2]) + m[3]
    for f in out.glob("*.html"):
        text = f.read_text(encoding="utf-8")
        new = re.sub(r"(<th\b[^>]*>)([^<]{8,})(</th>)", brk, text)
        if new != text: f.write_text(new, encoding="utf-8")


def sphinx(src: Path, out: Path) -> None:
    "Render with Sphinx; MathJax copied from Debian's libjs-mathjax into the site's _static/mathjax."
    if not (MATHJAX / "MathJax.js").exists():
        raise SystemExit(f"{MATHJAX} missing: `apt-get install libjs-mathjax` (make setup does), for offline math")
    mj = src.parent / "mathjax"
    for s, d in ((MATHJAX / part, mj / "mathjax" / part) for part in MATHJAX_PARTS):
        d.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(s, d, dirs_exist_ok=True) if s.is_dir() else shutil.copy(s, d)
    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-q", "-c", str(ROOT / "docs"), "-d", str(src.parent / "doctrees"),
           "-j", "2", str(src), str(src.parent / "html")]  # myst-nb puts its jupyter_execute/ beside the output
    subprocess.run(cmd, check=True, env=dict(os.environ, SITE_MATHJAX_DIR=str(mj)))
    shutil.move(src.parent / "html", out)
    (out / ".nojekyll").touch()


def readme_markdown(proc: Path) -> str:
    "README text: the processed index notebook as markdown, headed by its title and description."
    from nbconvert import MarkdownExporter
    cfg = get_config()
    nb = nbformat.read(proc / cfg.readme_nb, as_version=4)
    fm, nb.cells = front_matter(nb), [c for c in nb.cells if c.cell_type != "raw"]
    nb.metadata["language_info"] = {"name": "python"}
    body, _ = MarkdownExporter().from_notebook_node(nb)
    nbs = Path(cfg.nbs_path).resolve().relative_to(Path(cfg.config_path).resolve()).as_posix()
    body = re.sub(r"\]\((?!\w+:|/|#)([^)\s]+\.ipynb)", rf"]({nbs}/\1", body)  # README sits above nbs/
    head = f"# {fm.get('title', cfg.lib_name)}\n\n" + (f"> {fm['description']}\n\n" if fm.get("description") else "")
    return re.sub(r"\n{3,}", "\n\n", head + body).strip() + "\n"


def build_readme(proc: Path | None = None, check: bool = False) -> Path:
    "Write README.md from the processed index notebook; with `check`, compare instead and exit 1 on a difference."
    out, text = ROOT / "README.md", readme_markdown(proc or process([get_config().readme_nb]))
    old = out.read_text(encoding="utf-8") if out.exists() else ""
    if check and old != text:
        sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), text.splitlines(True),
                                                   "README.md (committed)", "README.md (from nbs/index.ipynb)"))
        raise SystemExit("README.md differs from what nbs/index.ipynb gives: run `python tools/build_site.py --readme`")
    if not check: out.write_text(text, encoding="utf-8")
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for flag, why in [("--execute", "execute every notebook first (full size)"), ("--no-readme", "no README.md"),
                      ("--readme", "only README.md from nbs/index.ipynb"), ("--check", "with --readme: diff, exit 1"),
                      ("--no-quarto", "no effect, kept for older scripts: the site is always rendered with Sphinx")]:
        ap.add_argument(flag, action="store_true", help=why)
    ap.add_argument("--out", type=Path, help="site folder (default: doc_path of settings.ini)")
    args = ap.parse_args(argv)
    os.chdir(ROOT)  # nbdev finds settings.ini from here
    cfg, t0 = get_config(), time.perf_counter()
    if args.readme:
        print(("checked " if args.check else "wrote ") + str(build_readme(check=args.check).relative_to(ROOT)))
        return
    groups = sidebar(cfg.nbs_path)
    nb_paths = [p for _, paths in groups for p in paths]
    if args.execute:
        step(f"execute {len(nb_paths)} notebooks at full size (each written back only if its outputs changed)")
        execute(nb_paths, cfg.nbs_path)
    out = (args.out or cfg.doc_path).resolve()
    step("nbdev processing (show_doc, front matter, hidden cells) into _proc/")
    proc = process([p.name for p in nb_paths])
    step(f"Sphinx + myst-nb (docs/conf.py): {len(nb_paths)} pages into {os.path.relpath(out)}/")
    to_sphinx(proc, nb_paths, proc / "_sphinx" / "src", groups); sphinx(proc / "_sphinx" / "src", out)
    link_signatures(out); break_headers(out)
    if not args.no_readme:
        step("README.md from nbs/index.ipynb"); build_readme(proc)
    step(f"done in {time.perf_counter() - t0:.0f} s: {os.path.relpath(out / 'index.html')}")


if __name__ == "__main__":
    main()
