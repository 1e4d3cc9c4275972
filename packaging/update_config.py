#!/usr/bin/python3
"""Drop-in for CloudStack's /opt/cloud/bin/update_config.py: applies the named file with vragent."""
import gc
import sys

gc.disable()  # one short process, like `vragent apply` (vragent.command)
from vragent.cli import exit_now  # noqa: E402
from vragent.shims import update_config  # noqa: E402

exit_now(update_config(sys.argv[1:]))
