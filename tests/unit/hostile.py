"""A valid push of every supported config type, on the router type it belongs to, and the
hostile values the fuzz corpus puts in their fields (tests/unit/test_fuzz.py)."""

from __future__ import annotations

import copy

from vragent.lab import sample, sample_lb, sample_vpc

# The values a push's fields are mutated to: line breaks and NUL (config injection), shell
# and template metacharacters, a lone surrogate, wrong types, numbers that are no port or
# id, huge values, and containers where scalars belong (and the other way round).
INJECTIONS = [
    "tier.example\ndhcp-script=/tmp/x\n#", "\naddress=/name/192.0.2.66\n#", "a\x00b", "a\rb", "a\tb",
    "a\u2028b", "a\x85b", "\udcff", "x\udcffy", " ; $(id) `id` %s {{7*7}} ", "r-7-VM other-name",
    "zz:zz", "x", "", " ", "1.5", "-1", "9" * 30, "1:2:3", "22-", "0.0.0.0/33", "a" * 5000, "\"quoted\"",
    "\\back\\slash", "#comment", "tab\tbed", "ÿ", "é.example",
]
NUMBERS = [0, -1, 1.5, 2.0, 65536, 2 ** 63, 10 ** 30, True, False]
SHAPES = [None, [], {}, [1], [1, 2, 3], [[1, 2]], {"a": "b"}, [None], ["\n"]]
HOSTILE = INJECTIONS + NUMBERS + SHAPES


def scenarios() -> dict[str, tuple[list[dict], dict]]:
    """type -> (the pushes before it, a valid push of that type)."""
    s, vpc = sample, sample_vpc
    isolated = [s.cmdline(), s.ips(s.ip_entry(s.SOURCE_NAT_IP, source_nat=True),
                                  s.ip_entry("198.51.100.20"))]
    dual = [s.cmdline(ipv6=True), *isolated[1:]]
    vm_ip = "192.0.2.11"
    lb = sample_lb.lb_rule(s.SOURCE_NAT_IP, 80, [(vm_ip, 8080), ("192.0.2.12", 8080)])
    shared = [s.shared_cmdline()]
    vpc_base = vpc.vpc(2)
    cases = {
        "cmdline": ([], s.cmdline()),
        "ips": ([s.cmdline()], isolated[1]),
        "firewallrules": (isolated, s.firewall_rules(s.firewall_rule(901, "tcp", (22, 22), "198.51.100.20"),
                                                     s.firewall_rule(902, "icmp", icmp_type=8, icmp_code=-1))),
        "forwardrules": (isolated, s.forward_rules(s.forward_rule("198.51.100.20", (2222, 2222), vm_ip, (22, 22)))),
        "staticnatrules": (isolated, s.staticnat_rules(s.staticnat_rule("198.51.100.20", vm_ip))),
        "dhcpentry": (isolated, s.dhcp_entry("02:00:00:00:00:11", vm_ip, "vm-1", "192.0.2.1", "192.0.2.1")),
        "vmdata": (isolated, s.vmdata(vm_ip, "vm-1", b"#cloud-config\n", instance_id="i-1")),
        "vmpassword": (isolated, s.vmpassword(vm_ip, "Secret-1")),
        "monitorservice": (isolated, s.monitor_service()),
        "remoteaccessvpn": (isolated, s.remote_access_vpn()),
        "vpnuserlist": ([*isolated, s.remote_access_vpn()], s.vpn_users(("alice", "pw-Alice1", True))),
        "loadbalancer": (isolated, sample_lb.loadbalancer(lb, stats=sample_lb.Stats())),
        "ipv6firewallrules": (dual, s.ipv6_firewall_rules(s.ipv6_firewall_rule(950, "tcp", ports=(22, 22)))),
        "guestnetwork": (vpc_base[:2], vpc_base[2]),
        "networkacl": (vpc_base, vpc.network_acl(1, ingress=[vpc.acl_rule("tcp", 22)])),
        "site2sitevpn": (vpc_base, vpc.site2sitevpn()),
        "staticroutes": ([*vpc_base, vpc.ips(vpc.private_gateway_entry())], vpc.static_routes(vpc.static_route())),
        "ipaliases": (shared, s.ip_aliases()),
        "dhcpconfig": ([*shared, s.ip_aliases()], s.dhcpconfig()),
    }
    return {kind: (copy.deepcopy(before), copy.deepcopy(push)) for kind, (before, push) in cases.items()}


def leaves(value, path=()):
    """Every path into `value` (dict keys and list indexes), containers included."""
    yield path
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))


def replaced(value, path, new):
    """A copy of `value` with the item at `path` replaced by `new` (removed when `new` is
    the DELETE marker)."""
    if not path:
        return new
    value = copy.deepcopy(value)
    holder = value
    for step in path[:-1]:
        holder = holder[step]
    if new is DELETE:
        del holder[path[-1]]
    else:
        holder[path[-1]] = new
    return value


DELETE = object()
