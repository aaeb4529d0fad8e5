#!/usr/bin/env bash
# Set up .venv from the workspace paths, then run the whole suite: lint, types, tests.
# Usage: bash scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check -r requirements-dev.txt
.venv/bin/ruff check .
.venv/bin/mypy
.venv/bin/python -m pytest "$@"
# the example third-party adapter, as its author would run the contract kit: its own rootdir
(cd examples/dataflow-duckdb && ../../.venv/bin/python -m pytest -q)
