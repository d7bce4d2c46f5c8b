#!/usr/bin/env bash
# Lint and run the test suite (the same command CI runs), in 2 processes
# (pytest-xdist, one per core of our 2-core machines). Arguments go on to pytest:
# `bash scripts/test.sh tests/test_cli.py -x`; `-n 0` or `-p no:xdist` runs the
# tests in this one process, `-n 4` in 4.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check myelo_docs tests benchmarks
parallel=(-n 2 --dist load)
for arg in "$@"; do
  case "$arg" in
    no:xdist | -pno:xdist) parallel=() ;;  # xdist not loaded: -n would be refused
  esac
done
.venv/bin/python -m pytest ${parallel[@]+"${parallel[@]}"} "$@"
