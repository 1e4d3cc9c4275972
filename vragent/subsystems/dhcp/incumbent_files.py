"""The incumbent's DHCP and DNS files, where operators and CloudStack read them.

CloudStack's health checks (`dhcp_check.py`, `dns_check.py`), its smoke tests
(`test_router_dhcphosts.py`: `cat /etc/dhcphosts.txt | grep IP`, `cat /etc/dhcpopts.txt |
grep <ip with underscores>`), the diagnostics bundle's default file list and operators'
runbooks read `/etc/dhcphosts.txt`, `/etc/dhcpopts.txt` and the VMs in `/etc/hosts`.
vragent's dnsmasq reads its own files (render/dnsmasq.py: a VM's secondary NIC lives in
dnsmasq.conf, not the hosts file, and names in an addn-hosts file), so these are views in
the incumbent's exact formats (CsDhcp), rendered from the same state in the same apply:

- `/etc/dhcphosts.txt`: `mac,ip,name,infinite` per VM, `mac,set:<ip_with_underscores>,ip,
  name,infinite` for a VM's secondary NIC;
- `/etc/dhcpopts.txt`: `<ip_with_underscores>,3`, `,6` and `,15` per secondary NIC (no
  router, DNS or domain through that network);
- `/etc/hosts`: the incumbent's preseed (localhost, the router's name, IPv6 names), the
  router's `<name> data-server` on each subnet's data-server address, and `ip<TAB>name`
  per VM, as the incumbent rewrites it whole.

A router that serves no guests leaves the files alone.
"""

from __future__ import annotations

from pathlib import Path

from vragent.model import RouterState
from vragent.paths import Paths

DHCP_HOSTS = "etc/dhcphosts.txt"
DHCP_OPTS = "etc/dhcpopts.txt"
HOSTS = "etc/hosts"


def _tag(ip) -> str:
    return str(ip).replace(".", "_")


def dhcphosts(state: RouterState) -> str:
    lines = []
    for host in state.dhcp_hosts:
        if host.default_entry:
            lines.append(f"{host.mac},{host.ip},{host.hostname},infinite")
        else:
            lines.append(f"{host.mac},set:{_tag(host.ip)},{host.ip},{host.hostname},infinite")
    return "".join(line + "\n" for line in lines)


def dhcpopts(state: RouterState) -> str:
    return "".join(f"{_tag(h.ip)},{option}\n" for h in state.dhcp_hosts if not h.default_entry
                   for option in (3, 6, 15))


def hosts(state: RouterState) -> str:
    name = state.config.get("name") or "localhost"
    entries = {"127.0.0.1": "localhost", "127.0.1.1": name,
               "::1": "localhost ip6-localhost ip6-loopback",
               "ff02::1": "ip6-allnodes", "ff02::2": "ip6-allrouters"}
    for subnet in state.guest_subnets():
        server = subnet.address if state.is_dhcp_server else subnet.gateway
        entries[str(server)] = f"{name} data-server"
    for host in state.dhcp_hosts:
        entries[str(host.ip)] = host.hostname
    return "".join(f"{ip}\t{names}\n" for ip, names in entries.items())


def files(state: RouterState, paths: Paths) -> dict[Path, tuple[str | None, int]]:
    if not state.serves_guests:
        return {}
    return {paths.under(DHCP_HOSTS): (dhcphosts(state), 0o644),
            paths.under(DHCP_OPTS): (dhcpopts(state), 0o644),
            paths.under(HOSTS): (hosts(state), 0o644)}
