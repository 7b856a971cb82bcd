#!/usr/bin/env bash
# Debian packages the docs need, installed with apt-get when missing (root or sudo):
#   chromium      the site's browser test (Playwright drives it through executable_path; no browser download);
#                 a machine with Google Chrome (GitHub's runners) uses that instead
#   libjs-mathjax MathJax, copied into the site so formulas render with no network (tools/build_site.py)
set -euo pipefail
need=()
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || command -v google-chrome >/dev/null \
  || need+=(chromium)
[ -f /usr/share/javascript/mathjax/MathJax.js ] || need+=(libjs-mathjax)
[ ${#need[@]} -eq 0 ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "== apt-get install ${need[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" > /dev/null
