#!/bin/sh
# update_interface_config.sh as the management server calls it, answered by vragent (vragent/cloudscripts.py).
exec /usr/bin/python3 -m vragent.cloudscripts update_interface_config.sh "$@"
