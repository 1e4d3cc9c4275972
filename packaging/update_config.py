#!/usr/bin/python3
"""Drop-in for CloudStack's /opt/cloud/bin/update_config.py: applies the named file with vragent."""
import gc
import sys

gc.disable()  # one short process, like `vragent apply` (vragent.command)
from vragent.ops.resident import hand_over  # noqa: E402 - the standard library only

# The resident agent (`vragent serve`) runs it when it listens; otherwise this process does.
code = hand_over("update_config", sys.argv[1:])
if code is None:
    from vragent.cli import exit_now  # noqa: E402
    from vragent.shims import update_config  # noqa: E402

    exit_now(update_config(sys.argv[1:]))
sys.stdout.flush()
sys.exit(code)
