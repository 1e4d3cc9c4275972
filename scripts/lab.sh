#!/usr/bin/env bash
# The main job: build the router lab in network namespaces, apply the sample isolated
# network to it, prove it with real traffic, and remove everything again.
#
#   bash scripts/lab.sh [PREFIX]     namespaces are PREFIX-vr, PREFIX-vm1, ... (default vrlab;
#                                    or LAB_PREFIX=...), so several labs can share a machine
set -euo pipefail
cd "$(dirname "$0")/.."
prefix=${1:-${LAB_PREFIX:-vrlab}}
bash scripts/bootstrap.sh
status=0
.venv/bin/vragent lab up --prefix "$prefix" && .venv/bin/vragent lab check --prefix "$prefix" || status=$?
.venv/bin/vragent lab down --prefix "$prefix"
exit "$status"
