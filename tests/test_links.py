"The project's own links (Colab badge, install URL, site and repository) all follow settings.ini."
import configparser
import importlib.util
import json
import re
import shutil
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("sync_links", ROOT / "docs" / "sync_links.py")
sync = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sync)

NEW = {"user": "someone-else", "repo": "focal_fork", "branch": "trunk", "git_url": "https://gitlab.example/someone-else/focal_fork",
       "doc_host": "https://docs.example.org", "doc_baseurl": "/focal_fork"}


def _texts(root: Path) -> dict:
    "The sources of every file the sync handles: notebook cell sources (not outputs) and the Markdown files."
    out = {}
    for p in sync.targets(root):
        if p.suffix == ".ipynb":
            cells = json.loads(p.read_text(encoding="utf-8"))["cells"]
            out[p.name] = "\n".join("".join(c["source"]) if isinstance(c["source"], list) else c["source"] for c in cells)
        else:
            out[p.name] = p.read_text(encoding="utf-8")
    return out


def _found(texts: dict, docs: str) -> dict:
    "Every project link, by kind: Colab links, install URLs and the [docs]/[repo]/[contributing] definitions."
    kinds = {"colab": sync.COLAB, "install": sync.INSTALL}
    found = {k: [(name, m[0]) for name, t in texts.items() for m in rx.finditer(t)] for k, rx in kinds.items()}
    for m_name in ("docs", "repo", "contributing"):
        found[m_name] = [(name, m[0]) for name, t in texts.items() for m in sync.DEFINITION.finditer(t) if m["name"] == m_name]
    found["page"] = _page_links(texts, docs)
    return found


HTML_LINK = re.compile(r"\]\(([^\s)]+?\.(?:html|ipynb)(?:#[^\s)]*)?)\)")  # an inline link to an .html or .ipynb


def _page_links(texts: dict, docs: str) -> list:
    "Links to the site's pages: relative ones (`data.html`) and those on the site's address `docs`; not other sites."
    return [(name, m[1]) for name, t in texts.items() for m in HTML_LINK.finditer(t)
            if m[1].startswith(docs) or not re.match(r"\w+:", m[1])]


def _page(url: str) -> str:
    return re.sub(r"\.(html|ipynb).*", "", url.rsplit("/", 1)[-1])


def test_committed_links_are_in_sync():
    assert sync.sync_links(ROOT, check=True) == [], "run `python docs/sync_links.py` (and build_site.py --readme)"


def test_committed_links_are_the_settings():
    s = sync.settings(ROOT)
    found = _found(_texts(ROOT), sync.links(s)["docs"])
    pages = {name for name, _ in found["colab"]}
    assert {"05_walkthrough.ipynb"} <= pages and {"index.ipynb", "05_walkthrough.ipynb"} <= {n for n, _ in found["install"]}
    assert all(url == f"git+{s['git_url']}" for _, url in found["install"])
    assert found["docs"] and found["repo"]
    assert "CONTRIBUTING.md" in {n for n, _ in found["repo"]}


def test_links_between_pages_are_absolute_and_lead_to_pages():
    "Relative links are dead in Colab and on GitHub: every link to a page is the site's address, and the page exists."
    docs = sync.links(sync.settings(ROOT))["docs"]
    pages = {sync.page_name(p.name) for p in (ROOT / "nbs").glob("*.ipynb")}
    links = _page_links(_texts(ROOT), docs)
    walkthrough = {_page(url) for name, url in links if name == "05_walkthrough.ipynb"}
    assert {"backbone", "multimodal", "study", "tuning"} <= walkthrough
    assert [(name, url) for name, url in links if not url.startswith(docs)] == [], "run `python docs/sync_links.py`"
    assert [(name, url) for name, url in links if _page(url) not in pages] == []  # no link to a page that is not there


def test_page_links_are_rewritten_and_only_those(tmp_path):
    want = sync.links(NEW)
    pages = sync.page_link({"data", "walkthrough"}, ["https://old.example/site"], ["02_data.ipynb", "05_walkthrough.ipynb"])
    text = ("[a](data.html) [b](./walkthrough.html#results) [c](https://old.example/site/data.html#x) "
            "[d](https://elsewhere.example/data.html) [e](nosuch.html) [f](https://auto.gluon.ai/stable/index.html) "
            "[g](05_walkthrough.ipynb) [h](https://github.com/x/y/blob/main/nbs/02_data.ipynb)")
    assert sync.rewrite(text, want, pages) == (
        "[a](https://docs.example.org/focal_fork/data.html) [b](https://docs.example.org/focal_fork/walkthrough.html#results) "
        "[c](https://docs.example.org/focal_fork/data.html#x) [d](https://elsewhere.example/data.html) [e](nosuch.html) "
        "[f](https://auto.gluon.ai/stable/index.html) [g](https://docs.example.org/focal_fork/walkthrough.html) "
        "[h](https://github.com/x/y/blob/main/nbs/02_data.ipynb)")


def test_one_edit_of_settings_moves_every_link(tmp_path):
    for name in ("settings.ini", "CONTRIBUTING.md"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, tmp_path / name)
    shutil.copytree(ROOT / "nbs", tmp_path / "nbs", ignore=shutil.ignore_patterns(".ipynb_checkpoints", "_*"))
    old = sync.settings(ROOT)
    before = _found(_texts(tmp_path), sync.links(old)["docs"])
    cfg = configparser.ConfigParser()
    cfg.read(tmp_path / "settings.ini", encoding="utf-8")
    cfg["DEFAULT"].update(NEW)
    with open(tmp_path / "settings.ini", "w", encoding="utf-8") as f:
        cfg.write(f)

    changed = sync.sync_links(tmp_path)
    assert {"index.ipynb", "05_walkthrough.ipynb", "CONTRIBUTING.md"} <= {p.name for p in changed}
    texts = _texts(tmp_path)
    after = _found(texts, sync.links(NEW)["docs"])
    for kind in before:  # the same links, each one moved
        assert len(after[kind]) == len(before[kind]) > 0, kind
    colab = f"https://colab.research.google.com/github/{NEW['user']}/{NEW['repo']}/blob/{NEW['branch']}/"
    assert all(url.startswith(colab) for _, url in after["colab"])
    assert [re.sub(r".*/blob/[^/]+/", "", u) for _, u in after["colab"]] == [re.sub(r".*/blob/[^/]+/", "", u) for _, u in before["colab"]]
    assert all(url == f"git+{NEW['git_url']}" for _, url in after["install"])
    assert all(d.endswith(f"]: {NEW['doc_host']}{NEW['doc_baseurl']}/") for _, d in after["docs"])
    assert all(d.endswith(f"]: {NEW['git_url']}") for _, d in after["repo"])
    assert all(d.endswith(f"]: {NEW['git_url']}/blob/trunk/CONTRIBUTING.md") for _, d in after["contributing"])
    assert all(u.startswith(f"{NEW['doc_host']}{NEW['doc_baseurl']}/") for _, u in after["page"])
    yml = (tmp_path / "nbs" / "nbdev.yml").read_text()  # where the site build reads its address
    assert f'site-url: "{NEW["doc_host"]}{NEW["doc_baseurl"]}"' in yml and f'repo-url: "{NEW["git_url"]}"' in yml
    assert "repo-branch: trunk" in yml
    for name, text in texts.items():  # nothing of the old repository or site is left
        for value in (old["git_url"], old["doc_host"], f"github/{old['user']}/"):
            assert value not in text, (name, value)
    assert sync.sync_links(tmp_path, check=True) == []  # and a second run has nothing to do
