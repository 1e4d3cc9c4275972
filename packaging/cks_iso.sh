#!/bin/sh
# cks_iso.sh as the management server calls it, answered by vragent (vragent/cloudscripts.py).
exec /usr/bin/python3 -m vragent.cloudscripts cks_iso.sh "$@"
