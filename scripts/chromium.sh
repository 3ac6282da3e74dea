#!/usr/bin/env bash
# Makes headless Chromium available for the dashboard test
# (tests/e2e/test_projections_dashboard.py): Debian's `chromium` package, driven
# by the `playwright` Python package through executable_path (Playwright's own
# browser download is never used). Idempotent; needs root (or sudo) for apt-get.
#
#   scripts/chromium.sh        # install if missing, then check
set -euo pipefail

CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [[ ! -x $CHROMIUM ]]; then
  SUDO=""
  [[ $EUID -eq 0 ]] || SUDO="sudo"
  echo "[chromium] installing Debian's chromium package ..." >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -q >&2
  $SUDO apt-get install -y -q --no-install-recommends chromium >&2
fi
"$CHROMIUM" --version >&2

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
"$PYTHON" - "$CHROMIUM" <<'PY'
import sys
from playwright.sync_api import sync_playwright

with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path=sys.argv[1],
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
    )
    page = browser.new_page()
    page.set_content("<p id=x>0</p><script>x.textContent = 6 * 7</script>")
    assert page.text_content("#x") == "42"
    browser.close()
print("[chromium] headless Chromium works with Playwright", file=sys.stderr)
PY
