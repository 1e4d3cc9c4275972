#!/bin/sh
# get_haproxy_stats.sh as the management server calls it, answered by vragent (vragent/cloudscripts.py).
exec /usr/bin/python3 -m vragent.cloudscripts get_haproxy_stats.sh "$@"
