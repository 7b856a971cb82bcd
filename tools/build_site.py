"""Build README.md (and, for the site issue, the docs site) from the notebooks, with or without Quarto.

    python tools/build_site.py --readme     # README.md from nbs/index.ipynb

nbdev does the notebook processing (`nbdev.serve.proc_nbs`: front matter, `show_doc` tables, hidden cells),
nbconvert turns the processed notebook into markdown.
"""
from __future__ import annotations

import argparse
import re
from pathlib import Path

import nbformat
import yaml
from nbconvert import MarkdownExporter
from nbdev.config import get_config
from nbdev.serve import proc_nbs

ROOT = Path(__file__).resolve().parents[1]


def front_matter(nb) -> dict:
    "The YAML front matter nbdev's processing puts in a notebook's first raw cell."
    for cell in nb.cells:
        if cell.cell_type == "raw" and cell.source.lstrip().startswith("---"):
            return yaml.safe_load(cell.source.strip().strip("-")) or {}
    return {}


def readme_markdown(proc: Path) -> str:
    "README text: the processed index notebook as markdown, headed by its title and description."
    cfg = get_config()
    nb = nbformat.read(proc / cfg.readme_nb, as_version=4)
    fm = front_matter(nb)
    nb.cells = [c for c in nb.cells if c.cell_type != "raw"]
    nb.metadata["language_info"] = {"name": "python"}  # fenced code blocks say ```python, as Quarto's do
    body, _ = MarkdownExporter().from_notebook_node(nb)
    head = f"# {fm.get('title', cfg.lib_name)}\n\n"
    if fm.get("description"): head += f"> {fm['description']}\n\n"
    return re.sub(r"\n{3,}", "\n\n", head + body).strip() + "\n"


def build_readme(proc: Path | None = None) -> Path:
    proc = proc or proc_nbs(get_config().nbs_path, n_workers=0)
    out = ROOT / "README.md"
    out.write_text(readme_markdown(proc), encoding="utf-8")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--readme", action="store_true", help="only regenerate README.md")
    args = ap.parse_args()
    print("wrote", build_readme())
