"""Sphinx configuration of the site built without Quarto (`make site`, `make docs`; tools/build_site.py).

Nothing here is copied by hand: the title, description and repository come from nbs/nbdev.yml and settings.ini,
the page order and captions from nbs/sidebar.yml (tools/build_site.py writes one toctree per section into the home
page), the favicon is nbs/favicon.svg, and the on-page contents and issue link follow _quarto.yml (`toc`,
`repo-actions`), as they do on the Quarto site.
"""
import configparser
import os
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
ini = configparser.ConfigParser()
ini.read(ROOT / "settings.ini")
s = ini["DEFAULT"]
site = yaml.safe_load((ROOT / "nbs" / "nbdev.yml").read_text(encoding="utf-8"))["website"]
quarto = yaml.safe_load((ROOT / "_quarto.yml").read_text(encoding="utf-8"))
repo_url = str(site.get("repo-url") or s["git_url"]).rstrip("/")

project = html_title = str(site.get("title") or s["title"])
author, copyright = s["author"], s["copyright"]
version = release = s["version"]

extensions = ["myst_nb", "sphinx_copybutton", "sphinx.ext.mathjax"]
exclude_patterns = ["**.ipynb_checkpoints"]
nb_execution_mode = "off"                  # the pages show the outputs stored in the notebooks
nb_output_stderr = "remove"                # warnings are no content for readers
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath", "attrs_inline", "attrs_block", "colon_fence", "html_image", "strikethrough"]
myst_heading_anchors = 4                   # ids as Quarto makes them (core.html#class_weights), as nbdev links them
suppress_warnings = ["mystnb.unknown_mime_type", "myst.header"]

html_theme = "furo"
html_static_path = ["_static", os.environ.get("SITE_MATHJAX_DIR", "_static")]
html_css_files = ["site.css"]
html_favicon = "../nbs/favicon.svg"       # the one copy, beside the notebooks, where Quarto (_quarto.yml) finds it too
templates_path = ["_templates"]
html_copy_source = html_show_sourcelink = False
html_last_updated_fmt = None               # no build dates: the same notebooks give the same site
html_context = {"repo_url": repo_url, "repo_branch": str(site.get("repo-branch") or s["branch"]),
                "repo_actions": quarto.get("website", {}).get("repo-actions", [])}
html_sidebars = {"**": ["sidebar/brand.html", "sidebar/search.html", "sidebar/scroll-start.html",
                        "sidebar/navigation.html", "sidebar/repo.html", "sidebar/scroll-end.html"]}
html_theme_options = {"navigation_with_keys": True, "top_of_page_buttons": []}
pygments_style, pygments_dark_style = "default", "monokai"
highlight_language = "text"                # fenced blocks without a language (benchmark tables) are plain text
html_show_search_summary = False           # summaries fetch() each page, which a page opened from disk may not

# MathJax from a local copy (Debian's libjs-mathjax, copied into _static/mathjax by tools/build_site.py): math
# renders with no network, from a server or opened from disk.
mathjax_path = "mathjax/MathJax.js?config=TeX-AMS_CHTML"
mathjax2_config = {"tex2jax": {"processClass": "tex2jax_process|mathjax_process|math|output_area"}, "CommonHTML": {"linebreaks": {"automatic": True}}, "showMathMenu": False,
                   "messageStyle": "none", "menuSettings": {"zoom": "None"}}

copybutton_exclude = ".linenos, .gp, .go"
