#!/usr/bin/env bash
# Install myelo-docs for development on a fresh Debian/Ubuntu machine, then
# write a demo packet. Safe to run again: it skips what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# System libraries: Pango for WeasyPrint, HarfBuzz subsetting (about 2.5x
# faster font subsetting and byte-identical output), poppler-utils for
# looking at pages as PNG (pdftoppm), chromium for the nurse's page browser
# test only (driven by Playwright, which must not download a browser of its
# own; the tool itself never needs a browser), curl for the README's HTTP
# examples.
DEBIAN_PACKAGES=(libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 poppler-utils chromium curl)
LOCK_WAIT_SECONDS=${LOCK_WAIT_SECONDS:-600}
LOCK_POLL_SECONDS=${LOCK_POLL_SECONDS:-5}

# apt-get, waiting (with a message) while another program holds the package
# manager's lock (an automatic update, another install) instead of failing
# with exit 100. (apt-get's own -o DPkg::Lock::Timeout waits silently, and only
# for the dpkg lock, not the package lists' lock that `apt-get update` takes.)
apt_get() {
  local deadline=$((SECONDS + LOCK_WAIT_SECONDS)) said="" err rc locked
  err=$(mktemp)
  trap 'rm -f "$err"' RETURN
  trap 'rm -f "$err"; exit 130' INT
  while true; do
    rc=0
    # env, not a prefix: sudo's env_reset would drop a prefixed variable; LC_ALL=C so
    # the lock message is the English one grep looks for, in any locale.
    $SUDO env LC_ALL=C DEBIAN_FRONTEND=noninteractive apt-get "$@" 2>"$err" || rc=$?
    locked=""
    if [ "$rc" -ne 0 ] && grep -qE 'Could not get lock|Unable to acquire the dpkg' "$err"; then
      locked=1
    fi
    if [ -n "$locked" ] && [ "$SECONDS" -lt "$deadline" ]; then
      if [ -z "$said" ]; then
        echo "Waiting for another program to finish installing packages (it holds the" >&2
        echo "package manager's lock: $(grep -m1 -o 'held by process.*' "$err" || echo 'apt/dpkg'))." >&2
        echo "Waiting up to ${LOCK_WAIT_SECONDS} seconds; Ctrl-C to stop." >&2
        said=1
      fi
      sleep "$LOCK_POLL_SECONDS"
      continue
    fi
    cat "$err" >&2
    if [ -n "$locked" ]; then
      echo "Gave up after ${LOCK_WAIT_SECONDS} seconds: another program still holds the package" >&2
      echo "manager's lock. Let it finish (or reboot), then run this script again;" >&2
      echo "LOCK_WAIT_SECONDS=1800 waits longer." >&2
    fi
    return "$rc"
  done
}

missing=()
if command -v dpkg-query >/dev/null; then
  for pkg in "${DEBIAN_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "ok installed" || missing+=("$pkg")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "Installing Debian packages: ${missing[*]}"
  case " ${missing[*]} " in
    *" chromium "*) echo "(chromium is most of the download; only the browser test uses it)";;
  esac
  apt_get update -qq
  apt_get install -y -qq "${missing[@]}" >/dev/null
fi

PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -e '.[test]'
.venv/bin/python -c "import myelo_docs" # fail here, not later, if the install broke

# The script's own demo file: replaced on every run.
.venv/bin/myelo-docs demo -o myelo-demo-packet.pdf --force

cat <<DONE

Installed. Run the tests with: bash scripts/test.sh   (about 7 minutes on 2 cores)
To type myelo-docs without its folder, put .venv/bin on your PATH, in this shell:
    export PATH="$PWD/.venv/bin:\$PATH"
or activate the venv (source .venv/bin/activate), or run it as .venv/bin/myelo-docs.
DONE
