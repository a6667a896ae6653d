#!/bin/bash
# The test command: set-up, then every test (model, rendering, daemon validators, the
# Pulumi program under the mock engine, pacemaker, the namespace lab). Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PYTHON=${PYTHON:-python3}
cleanup() { "$PYTHON" -m webcluster lab down >/dev/null 2>&1 || true; }
trap cleanup EXIT
"$PYTHON" -m webcluster docs --check
"$PYTHON" -m pytest -q -p no:cacheprovider tests "$@"
