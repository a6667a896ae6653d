#!/bin/bash
# Try it now: installs what the lab needs, then brings up the seed's cluster (the dev
# stack) as network namespaces on this machine with the real daemons. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
PYTHON=${PYTHON:-python3}
"$PYTHON" -m webcluster lab up --stack "${1:-dev}"
