"""Point the project's own links at the repository and site named in settings.ini.

One edit in settings.ini (`user`, `repo`, `branch`, `git_url`, `doc_host`, `doc_baseurl`), then
`python docs/sync_links.py`, rewrites in the notebooks' sources (not their outputs) and CONTRIBUTING.md:

* Colab links `https://colab.research.google.com/github/<user>/<repo>/blob/<branch>/<path>`;
* install URLs `git+<git_url>` (in `pip install "focal_tutorial[automm] @ git+..."`);
* the reference-style link definitions `[docs]: <doc_host><doc_baseurl>/`, `[repo]: <git_url>` and
  `[contributing]: <git_url>/blob/<branch>/CONTRIBUTING.md`.

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


def settings(root: Path) -> dict:
    cfg = configparser.ConfigParser()
    cfg.read(root / "settings.ini", encoding="utf-8")
    return dict(cfg["DEFAULT"])


def links(s: dict) -> dict:
    "What each kind of link must be, from the settings."
    return {"colab": f"https://colab.research.google.com/github/{s['user']}/{s['repo']}/blob/{s['branch']}/",
            "install": f"git+{s['git_url']}", "docs": s["doc_host"].rstrip("/") + s["doc_baseurl"].rstrip("/") + "/",
            "repo": s["git_url"], "contributing": f"{s['git_url']}/blob/{s['branch']}/CONTRIBUTING.md"}


def rewrite(text: str, want: dict) -> str:
    "`text` with every project link as `want` says."
    text = COLAB.sub(lambda m: want["colab"] + m["path"], text)
    text = INSTALL.sub(want["install"], text)
    return DEFINITION.sub(lambda m: f"[{m['name']}]: {want[m['name']]}", text)


def targets(root: Path) -> list[Path]:
    return sorted((root / "nbs").glob("*.ipynb")) + [p for p in (root / "CONTRIBUTING.md",) if p.exists()]


def sync_links(root=".", check: bool = False) -> list[Path]:
    "Rewrite the links under `root` from its settings.ini (or, with `check`, only list the files that would change)."
    root = Path(root)
    want, changed = links(settings(root)), []
    for p in targets(root):
        raw = p.read_text(encoding="utf-8")
        if p.suffix == ".ipynb":
            nb = json.loads(raw)
            for cell in nb["cells"]:  # sources only: outputs are whatever the code printed
                src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
                new = rewrite(src, want)
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
    return changed


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is out of date")
    ap.add_argument("--root", default=str(Path(__file__).resolve().parents[1]))
    a = ap.parse_args()
    files = sync_links(a.root, check=a.check)
    for p in files:
        print(("out of date: " if a.check else "updated: ") + str(p))
    sys.exit(1 if a.check and files else 0)
