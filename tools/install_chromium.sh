#!/usr/bin/env bash
# Debian's chromium for the site's browser test (Playwright drives it through executable_path; no browser
# download). Installs with apt-get when missing; needs root or sudo.
set -euo pipefail
if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then exit 0; fi
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "== installing Debian's chromium (browser test)"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium > /dev/null
