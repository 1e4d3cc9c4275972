#!/usr/bin/python3
"""Drop-in for CloudStack's /opt/cloud/bin/update_config.py: applies the named file with vragent."""
import sys

from vragent.shims import update_config

sys.exit(update_config(sys.argv[1:]))
