#!/usr/bin/env bash
# The main job: build the router lab in network namespaces, apply the sample isolated
# network to it, prove it with real traffic, and remove everything again.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
status=0
.venv/bin/vragent lab up && .venv/bin/vragent lab check || status=$?
.venv/bin/vragent lab down
exit "$status"
