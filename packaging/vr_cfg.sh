#!/bin/sh
# Drop-in for CloudStack's /opt/cloud/bin/vr_cfg.sh: applies a VR-<uuid>.cfg batch as one
# transaction with vragent, and exits non-zero when it did not apply (unlike the incumbent).
# The resident agent (`vragent serve`) runs it when it listens; otherwise this process does.
exec /usr/bin/python3 -c 'import gc, sys; gc.disable()
from vragent.ops.resident import hand_over
code = hand_over("vr_cfg", sys.argv[1:])
if code is None:
    from vragent.cli import exit_now; from vragent.shims import vr_cfg; exit_now(vr_cfg(sys.argv[1:]))
sys.exit(code)' "$@"
