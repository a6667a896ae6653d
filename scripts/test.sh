#!/bin/bash
# The test command: set-up, then every test (model, rendering, daemon validators, the
# Pulumi program under the mock engine, pacemaker, the namespace lab), then the end-to-end
# run: the program's plan replayed on QEMU guests and the seed's tests on them (about 25
# minutes; HAWC_E2E=0 skips it, HAWC_E2E_STACK picks the stack). Needs root.
# The lab tests and the e2e run remove everything they create, also on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
bash scripts/bootstrap.sh --check
PYTHON=${PYTHON:-python3}
"$PYTHON" -m webcluster docs --check
"$PYTHON" -m pytest -q -p no:cacheprovider tests "$@"
if [ "${HAWC_E2E:-1}" != 0 ]; then
	"$PYTHON" -m webcluster e2e run --stack "${HAWC_E2E_STACK:-e2e}"
fi
