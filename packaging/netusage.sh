#!/bin/sh
# Drop-in for CloudStack's /opt/cloud/bin/netusage.sh, on the counters vragent keeps in the
# incumbent's NETWORK_STATS chains (same names, same rule order).
#
#   netusage.sh -g              byte counters of NETWORK_STATS: "sent:received:sent:received:"
#   netusage.sh -g -l PUBLICIP  the same for NETWORK_STATS_<NIC holding PUBLICIP>
#   netusage.sh -r              zero NETWORK_STATS
#   netusage.sh -c|-a|-d        nothing to do (exit 0), as in the incumbent
set -u
chain=NETWORK_STATS
action=
while [ $# -gt 0 ]; do
    case "$1" in
        -g|-r) action=$1 ;;
        -c|-a|-d) [ -z "$action" ] && action=none ;;
        -l) shift
            device=$(ip -4 -o addr show | awk -v ip="${1:-}/" 'index($4, ip) == 1 { print $2; exit }')
            [ -n "$device" ] || { echo "no NIC holds ${1:-}" >&2; exit 1; }
            chain="NETWORK_STATS_$device" ;;
    esac
    shift
done
case "$action" in
    -g) iptables -w -L "$chain" -n -v -x | awk 'NR > 2 { printf "%s:", $2 }'; echo ;;
    -r) iptables -w -Z "$chain" ;;
    none) ;;
    *) echo "usage: netusage.sh -g [-l PUBLICIP] | -r | -c | -a | -d" >&2; exit 2 ;;
esac
