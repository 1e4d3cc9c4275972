#!/bin/sh
# Drop-in for CloudStack's /opt/cloud/bin/checkrouter.sh: prints `Status: PRIMARY|BACKUP|FAULT`
# (FAULT when keepalived is not running), which the management server turns into the
# router's redundantstate. The role is the one keepalived last reported to vragent.
exec /usr/bin/python3 -m vragent status --checkrouter "$@"
