"""One package per subsystem of the router, each with the same named faces (README, Layout).

ORDER is the declared dependency order: a subsystem's pure faces may import the pure faces of
subsystems before it, never after (tests/unit/test_layers.py enforces it). TYPES names the
module that parses and merges each CloudStack config type; it is imported only when a push
carries that type, since most pushes carry one or two and importing every handler costs
every push.
"""

ORDER = ("network", "firewall", "vpc", "ipv6", "dhcp", "guestdata", "monitoring", "lb", "vpn", "vrrp")

TYPES = {
    "cmdline": "network", "ips": "network", "guestnetwork": "network", "ipaliases": "network",
    "staticroutes": "network",
    "firewallrules": "firewall", "forwardrules": "firewall", "staticnatrules": "firewall",
    "networkacl": "vpc",
    "ipv6firewallrules": "ipv6",
    "dhcpentry": "dhcp", "dhcpconfig": "dhcp",
    "vmdata": "guestdata", "vmpassword": "guestdata",
    "monitorservice": "monitoring",
    "loadbalancer": "lb",
    "remoteaccessvpn": "vpn", "vpnuserlist": "vpn", "site2sitevpn": "vpn",
}


def type_module(kind: str) -> str:
    """The module that handles CloudStack config type `kind` (a key of TYPES)."""
    return f"{__name__}.{TYPES[kind]}.{kind}"
