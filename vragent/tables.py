"""The netfilter vocabulary every part of the agent shares: the tables and chains vragent
manages, what is vragent's (ownership), table specs, and how addresses and protocols are
written in iptables-save's words. Pure: no subsystem, no OS."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network

from vragent.values import Protocol, Rule, device_index

CHAIN_PREFIX = "vr-"
# The incumbent's usage counters keep their names: the management server's netusage.sh
# reads `iptables -L NETWORK_STATS` on the router and bills from the byte column.
STATS_CHAIN = "NETWORK_STATS"


# A VPC router's tier ACL chains keep the incumbent's names too (subsystems/vpc/rules.py).
ACL_CHAIN_PREFIXES = ("ACL_INBOUND_", "ACL_OUTBOUND_")


def is_owned(chain: str) -> bool:
    """Chains vragent refills as a whole; every other chain is left alone."""
    return (chain.startswith(CHAIN_PREFIX) or chain == STATS_CHAIN or chain.startswith(STATS_CHAIN + "_")
            or chain.startswith(ACL_CHAIN_PREFIXES))
TABLES = ("raw", "mangle", "nat", "filter")
BUILTIN_CHAINS = {
    "raw": ("PREROUTING", "OUTPUT"),
    "mangle": ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"),
    "nat": ("PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"),
    "filter": ("INPUT", "FORWARD", "OUTPUT"),
}
ESTABLISHED = "-m conntrack --ctstate RELATED,ESTABLISHED"
# ip6tables tables vragent manages, by key (subsystems/ipv6/rules.py); IPv6 is never NAT'ed.
IP6_TABLES = ("filter6",)


def table_key(name: str, family: int) -> str:
    return name if family == 4 else f"{name}6"


def kernel_table(key: str) -> tuple[str, int]:
    """`filter6` -> ("filter", 6); `nat` -> ("nat", 4)."""
    return (key[:-1], 6) if key in IP6_TABLES else (key, 4)


@dataclass
class TableSpec:
    """What vragent wants in one table: policies, jumps at the top of built-ins, owned chains."""

    name: str
    policies: dict[str, str] = field(default_factory=dict)
    jumps: dict[str, list[str]] = field(default_factory=dict)  # built-in chain -> ["-A INPUT -j vr-INPUT"]
    chains: dict[str, list[str]] = field(default_factory=dict)  # owned chain -> rule lines
    family: int = 4  # 6: an ip6tables table (subsystems/ipv6/rules.py)

    @property
    def key(self) -> str:
        """Its name among the router's tables: the kernel's name, `filter6` for IPv6."""
        return table_key(self.name, self.family)

    def chain(self, name: str) -> list[str]:
        return self.chains.setdefault(name, [])

    def add(self, chain: str, spec: str) -> None:
        # Collapse the gaps left by empty match parts: iptables-save prints single spaces.
        self.chain(chain).append(" ".join(f"-A {chain} {spec}".split()))

    def jump(self, builtin: str, spec: str) -> None:
        self.jumps.setdefault(builtin, []).append(f"-A {builtin} {spec}")

    def rule_count(self) -> int:
        return sum(len(r) for r in self.chains.values()) + sum(len(r) for r in self.jumps.values())


@functools.lru_cache(maxsize=65536)
def text(address: IPv4Address) -> str:
    """str() of an address, remembered: the same few thousand addresses are printed over and over."""
    return str(address)


def host(address: IPv4Address) -> str:
    return f"{text(address)}/32"


def net(network: IPv4Network) -> str:
    return str(network)


def match_protocol(protocol: Protocol, ports=None, icmp_type=None, icmp_code=None, *,
                   source_port: bool = False) -> str:
    """The protocol part of a rule in iptables-save's words."""
    if protocol is Protocol.ALL:
        return ""
    text = f"-p {protocol.value}"
    if protocol.has_ports and ports is not None:
        text += f" -m {protocol.value} --{'s' if source_port else 'd'}port {ports.match()}"
    elif protocol is Protocol.ICMP and icmp_type is not None:
        text += f" -m icmp --icmp-type {icmp_type}" + (f"/{icmp_code}" if icmp_code is not None else "")
    return text



def join(*parts: str) -> str:
    """Rule parts with the empty ones left out."""
    return " ".join(p for p in parts if p)


# -- what else is vragent's: policy routing (subsystems/network/routing.py) --------------------

TABLE_BASE = 100  # Table_ethN = 100 + N, mark 0x(100+N)
MARK_RULE_PRIORITY = 1100  # + N: fwmark 0x(100+N) lookup 100+N
SOURCE_RULE_PRIORITY = 1200  # + N: from <public network> lookup 100+N
_OWNED_PRIORITIES = range(MARK_RULE_PRIORITY, SOURCE_RULE_PRIORITY + 100)
_OWNED_TABLES = range(TABLE_BASE + 1, TABLE_BASE + 100)

MAIN_TABLE = 254
# The routing protocol number of a VPC's static routes (subsystems/network/static_routes.py) in the main
# table: what marks them vragent's. Not one iproute2 names (rt_protos), so no one else's.
STATIC_ROUTE_PROTOCOL = 77


def table_of(device: str) -> int:
    return TABLE_BASE + device_index(device)


def mark_of(device: str) -> int:
    return table_of(device)


def table_name(device: str) -> str:
    return f"Table_{device}"


def owns_rule(rule: Rule) -> bool:
    return rule.priority in _OWNED_PRIORITIES and rule.table in _OWNED_TABLES


def owned_tables(devices) -> set[int]:
    """The tables vragent manages on a router with these NICs: 100+N of each ethN, N >= 1
    (the lowest public NIC of any layout: a VPC's eth1)."""
    return {table_of(d) for d in devices if d.startswith("eth") and 1 <= device_index(d) < 100}
