#!/bin/sh
# bumpup_priority.sh as the management server calls it, answered by vragent (vragent/cloudscripts.py).
exec /usr/bin/python3 -m vragent.cloudscripts bumpup_priority.sh "$@"
