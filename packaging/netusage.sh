#!/bin/sh
# Drop-in for CloudStack's /opt/cloud/bin/netusage.sh, on the counters vragent keeps in the
# incumbent's NETWORK_STATS chains (same names, same rule order).
#
#   netusage.sh -g              byte counters of NETWORK_STATS: "sent:received:sent:received:"
#   netusage.sh -g -l PUBLICIP  the same for NETWORK_STATS_<NIC holding PUBLICIP>
#   netusage.sh -r              zero NETWORK_STATS
#   netusage.sh -c|-a|-d        nothing to do (exit 0), as in the incumbent
#
# Installed as vpc_netusage.sh too (a symlink to this file): a VPC router keeps one chain
# per public NIC only (NETWORK_STATS_ethN, on the VPC's CIDR), so that name needs -l:
#
#   vpc_netusage.sh -l PUBLICIP -g   byte counters of NETWORK_STATS_<NIC holding PUBLICIP>
#   vpc_netusage.sh -l PUBLICIP -r   zero that chain
#   vpc_netusage.sh -n               VPN usage: nothing, no output (as in the incumbent)
#   vpc_netusage.sh -c [-v CIDR]|-d  nothing to do (exit 0): vragent's apply keeps the chains
set -u
chain=NETWORK_STATS
action=
nic=
name=netusage.sh
case "$(basename "$0")" in
    vpc_netusage.sh) name=vpc_netusage.sh ;;
esac
while [ $# -gt 0 ]; do
    case "$1" in
        -g|-r) action=$1 ;;
        -c|-a|-d|-n) [ -z "$action" ] && action=none ;;
        -v) shift ;;  # the VPC's CIDR (with -c): the chains follow the state, not this
        -l) shift
            # "IP/" at the start of the address column: 10.0.0.1 never matches 110.0.0.1/24.
            nic=$(ip -4 -o addr show | awk -v ip="${1:-}/" 'index($4, ip) == 1 { print $2; exit }')
            [ -n "$nic" ] || { echo "no NIC holds ${1:-}" >&2; exit 1; }
            chain="NETWORK_STATS_$nic" ;;
    esac
    shift
done
if [ "$name" = vpc_netusage.sh ] && [ -z "$nic" ] && { [ "$action" = -g ] || [ "$action" = -r ]; }; then
    echo "usage: vpc_netusage.sh -l PUBLICIP -g|-r: a VPC counts per public NIC" >&2
    exit 2
fi
case "$action" in
    -g) iptables -w -L "$chain" -n -v -x | awk 'NR > 2 { printf "%s:", $2 }'; echo ;;
    -r) iptables -w -Z "$chain" ;;
    none) ;;
    *) if [ "$name" = vpc_netusage.sh ]; then
           echo "usage: vpc_netusage.sh -l PUBLICIP -g|-r | -n | -c [-v CIDR] | -d" >&2
       else
           echo "usage: netusage.sh -g [-l PUBLICIP] | -r | -c | -a | -d" >&2
       fi
       exit 2 ;;
esac
