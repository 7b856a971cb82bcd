"""Point the project's own links at the repository and site named in settings.ini.

One edit in settings.ini (`user`, `repo`, `branch`, `git_url`, `doc_host`, `doc_baseurl`), then
`python docs/sync_links.py`, rewrites in the notebooks' sources (not their outputs) and CONTRIBUTING.md:

* Colab links `https://colab.research.google.com/github/<user>/<repo>/blob/<branch>/<path>`;
* install URLs `git+<git_url>` (in `pip install "focal_tutorial[automm] @ git+..."`);
* the reference-style link definitions `[docs]: <doc_host><doc_baseurl>/`, `[repo]: <git_url>` and
  `[contributing]: <git_url>/blob/<branch>/CONTRIBUTING.md`;
* links between pages, `[text](<doc_host><doc_baseurl>/<page>.html#anchor)`: absolute, so that they work wherever a
  notebook is read (on the site, in Colab, on GitHub). A relative link to a page (`](data.html)`) or to its notebook
  (`](02_data.ipynb)`) becomes one; the site build (tools/build_site.py) turns them back into links between the
  built pages.

It also keeps `site-url`, `repo-url` and `repo-branch` of nbs/nbdev.yml (which nbdev generates from the same settings,
and where the site build reads the site's address) in step, so links written for the old address are found.

`--check` changes nothing and exits 1 when a file is out of date. README.md is generated from nbs/index.ipynb
(`tools/build_site.py --readme`, after `nbdev_export` has copied the settings into `_modidx.py`): run it after."""
import argparse
import configparser
import json
import re
import sys
from pathlib import Path

COLAB = re.compile(r"https://colab\.research\.google\.com/github/[^/\s]+/[^/\s]+/blob/[^/\s]+/(?P<path>[^\s)\]\"'>]+)")
INSTALL = re.compile(r"git\+https?://[^\s\"'\])>]+")
DEFINITION = re.compile(r"^\[(?P<name>docs|repo|contributing)\]: \S+[ \t]*$", re.M)
NBDEV_YML = {"site-url": "docs", "repo-url": "repo", "repo-branch": "branch"}  # nbs/nbdev.yml key -> links() key


def settings(root: Path) -> dict:
    cfg = configparser.ConfigParser()
    cfg.read(root / "settings.ini", encoding="utf-8")
    return dict(cfg["DEFAULT"])


def links(s: dict) -> dict:
    "What each kind of link must be, from the settings."
    return {"colab": f"https://colab.research.google.com/github/{s['user']}/{s['repo']}/blob/{s['branch']}/",
            "install": f"git+{s['git_url']}", "docs": s["doc_host"].rstrip("/") + s["doc_baseurl"].rstrip("/") + "/",
            "repo": s["git_url"], "contributing": f"{s['git_url']}/blob/{s['branch']}/CONTRIBUTING.md",
            "branch": s["branch"]}


def page_name(notebook: str) -> str:
    "The page a notebook becomes, as nbdev names it: `05_walkthrough.ipynb` -> `walkthrough`."
    return re.sub(r"^\d+[a-zA-Z0-9]*_", "", Path(notebook).stem.lower())


def site_url(root: Path) -> str | None:
    "The site's address that nbs/nbdev.yml holds now (links written for it are the site's), without the final '/'."
    p = root / "nbs" / "nbdev.yml"
    m = re.search(r'^\s*site-url:\s*"?([^"\s]+)"?\s*$', p.read_text(encoding="utf-8"), re.M) if p.exists() else None
    return m[1].rstrip("/") if m else None


def page_link(pages, sites, notebooks=()) -> re.Pattern:
    """Inline Markdown links to one of `pages`: relative (`data.html`, `./data.html`) or absolute on one of `sites`,
    and relative links to one of `notebooks` (`02_data.ipynb`, which is the page `data`)."""
    bases = "|".join([r"\./"] + [re.escape(s.rstrip("/") + "/") for s in sites if s])
    names = "|".join(re.escape(p) for p in sorted(pages, key=len, reverse=True))
    nbs = "|".join(re.escape(Path(n).stem) for n in sorted(notebooks, key=len, reverse=True)) or "(?!)"
    return re.compile(rf"\]\((?:(?:{bases})?(?P<page>{names})\.html|(?:\./)?(?P<nb>{nbs})\.ipynb)"
                      rf"(?P<anchor>#[^\s)]*)?\)")


def rewrite(text: str, want: dict, pages: re.Pattern | None = None) -> str:
    "`text` with every project link as `want` says (and, given `pages` from `page_link`, every link between pages)."
    text = COLAB.sub(lambda m: want["colab"] + m["path"], text)
    text = INSTALL.sub(want["install"], text)
    if pages is not None:
        text = pages.sub(lambda m: f"]({want['docs']}{m['page'] or page_name(m['nb'])}.html{m['anchor'] or ''})", text)
    return DEFINITION.sub(lambda m: f"[{m['name']}]: {want[m['name']]}", text)


def targets(root: Path) -> list[Path]:
    return sorted((root / "nbs").glob("*.ipynb")) + [p for p in (root / "CONTRIBUTING.md",) if p.exists()]


def _nbdev_yml(root: Path, want: dict) -> str | None:
    "nbs/nbdev.yml with the site and repository of `want` (None if there is no such file)."
    p = root / "nbs" / "nbdev.yml"
    if not p.exists():
        return None
    text = p.read_text(encoding="utf-8")
    for key, kind in NBDEV_YML.items():
        value = want[kind].rstrip("/") if kind == "docs" else want[kind]
        quoted = f'"{value}"' if kind != "branch" else value
        text = re.sub(rf"^(\s*{key}:)\s*.*$", lambda m: f"{m[1]} {quoted}", text, flags=re.M)
    return text


def sync_links(root=".", check: bool = False, only=None) -> list[Path]:
    "Rewrite the links under `root` from its settings.ini (or, with `check`, only list the files that would change)."
    root = Path(root)
    want, changed = links(settings(root)), []
    notebooks = sorted((root / "nbs").glob("*.ipynb"))
    pages = page_link({page_name(p.name) for p in notebooks}, [site_url(root), want["docs"]], [p.name for p in notebooks])
    files = targets(root)
    if only is not None:  # just these files (nbs/nbdev.yml is left alone)
        chosen = {Path(f).resolve() for f in only}
        files = [p for p in files if p.resolve() in chosen]
    for p in files:
        raw = p.read_text(encoding="utf-8")
        if p.suffix == ".ipynb":
            nb = json.loads(raw)
            for cell in nb["cells"]:  # sources only: outputs are whatever the code printed
                src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                new = rewrite(src, want, pages if cell["cell_type"] == "markdown" else None)
                if new != src:
                    cell["source"] = new.splitlines(keepends=True)
            out = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
            if json.loads(out) == json.loads(raw):
                continue
        else:
            out = rewrite(raw, want)
            if out == raw:
                continue
        changed.append(p)
        if not check:
            p.write_text(out, encoding="utf-8")
    yml = _nbdev_yml(root, want) if only is None else None
    if yml is not None and yml != (root / "nbs" / "nbdev.yml").read_text(encoding="utf-8"):
        changed.append(root / "nbs" / "nbdev.yml")
        if not check:
            (root / "nbs" / "nbdev.yml").write_text(yml, encoding="utf-8")
    return changed


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="only these files (default: every notebook, CONTRIBUTING.md, nbs/nbdev.yml)")
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    a = ap.parse_args()
    files = sync_links(a.root, check=a.check, only=a.files or None)
    for p in files:
        print(("out of date: " if a.check else "updated: ") + str(p))
    sys.exit(1 if a.check and files else 0)
