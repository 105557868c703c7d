#!/usr/bin/env bash
# System packages the test suite needs, from Debian's archive: Chromium for tests/test_browser.py (Playwright drives
# /usr/bin/chromium; it never downloads a browser of its own). Runs as root, or through sudo where there is one.
set -euo pipefail
if command -v chromium >/dev/null; then
    exit 0
fi
as_root=()
if [ "$(id -u)" -ne 0 ]; then
    as_root=(sudo)
fi
"${as_root[@]}" apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
chromium --version
