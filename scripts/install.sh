#!/usr/bin/env bash
# Install myelo-docs for development on a fresh Debian/Ubuntu machine, then
# write a demo packet. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# System libraries: Pango for WeasyPrint, HarfBuzz subsetting (about 2.5x
# faster font subsetting and byte-identical output), poppler-utils for
# looking at pages as PNG (pdftoppm), chromium for the nurse's page browser
# test (driven by Playwright, which must not download a browser of its own),
# curl for the README's HTTP examples.
DEBIAN_PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 poppler-utils chromium curl)
missing=()
if command -v dpkg-query >/dev/null; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/python -c "import myelo_docs" # fail here, not later, if the install broke

.venv/bin/myelo-docs demo -o myelo-demo-packet.pdf
