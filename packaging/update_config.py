#!/usr/bin/python3
"""Drop-in for CloudStack's /opt/cloud/bin/update_config.py: applies the named file with vragent."""
import sys

from vragent.cli import exit_now
from vragent.shims import update_config

exit_now(update_config(sys.argv[1:]))
