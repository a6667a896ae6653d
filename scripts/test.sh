#!/bin/bash
# The test command: set-up, then every test (model, rendering, daemon validators, the
# Pulumi program under the mock engine, pacemaker, the namespace lab). Needs root.
# The lab tests take the lab lock and remove everything they create, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PYTHON=${PYTHON:-python3}
"$PYTHON" -m webcluster docs --check
"$PYTHON" -m pytest -q -p no:cacheprovider tests "$@"
