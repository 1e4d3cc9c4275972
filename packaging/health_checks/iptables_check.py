#!/usr/bin/python3
# vragent's iptables_check.py for CloudStack's /root/monitorServices.py (vragent/healthchecks.py).
import sys

from vragent.healthchecks import main

sys.exit(main("iptables_check", sys.argv[1:]))
