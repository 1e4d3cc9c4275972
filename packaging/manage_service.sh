#!/bin/sh
# manage_service.sh as the management server calls it, answered by vragent (vragent/cloudscripts.py).
exec /usr/bin/python3 -m vragent.cloudscripts manage_service.sh "$@"
