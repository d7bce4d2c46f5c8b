#!/usr/bin/env bash
# Lint and run the test suite (the same command CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/ruff check myelo_docs tests benchmarks
.venv/bin/python -m pytest "$@"
