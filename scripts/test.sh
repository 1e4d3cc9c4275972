#!/usr/bin/env bash
# Runs the whole test suite: unit tests, then lab tests with real daemons in network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
