#!/usr/bin/env bash
# Set up .venv with DataFlow on embedded SQLite (from the workspace paths) and run the demo.
# Usage: bash scripts/demo.sh [dataflow demo args, e.g. --rows 20000]
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check \
  -e "./packages/dataflow-core[sqlite,cli]" -e ./packages/dataflow-sqlite
.venv/bin/dataflow demo "$@"
