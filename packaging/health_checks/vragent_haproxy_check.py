#!/usr/bin/python3
# vragent's vragent_haproxy_check.py for CloudStack's /root/monitorServices.py (vragent/healthchecks.py).
import sys

from vragent.healthchecks import main

sys.exit(main("vragent_haproxy_check", sys.argv[1:]))
