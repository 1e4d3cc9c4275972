"""A packet tracer over the rendered ruleset (pure, for tests): where one packet goes through
netfilter's tables as vragent renders them, in milliseconds, without namespaces.

    trace(tables, Packet("203.0.113.10", "198.51.100.20", "tcp", 2222, into="eth2", out="eth0"))
    -> Trace(verdict="ACCEPT", dnat=("192.0.2.11", 22), snat=None, ...)

It walks the hooks in netfilter's order for a packet that enters by `into`: mangle PREROUTING,
nat PREROUTING (DNAT), then filter INPUT (to the router itself, `out=None`) or filter FORWARD and
nat POSTROUTING (SNAT) on `out`. Only the matches and targets vragent renders are understood;
anything else raises, so a new kind of rule cannot make a trace pass by being ignored. Routing
is the caller's: it names the NIC a packet leaves by.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from ipaddress import ip_address, ip_network

from vragent.tables import TableSpec


@dataclass(frozen=True)
class Packet:
    source: str
    destination: str
    protocol: str = "tcp"  # tcp | udp | icmp | esp | vrrp | ...
    dport: int | None = None
    into: str = "eth0"
    out: str | None = None  # None: addressed to the router itself (filter INPUT)
    state: str = "NEW"  # conntrack state of the packet's connection: NEW | ESTABLISHED | RELATED
    sport: int | None = None
    ipsec: bool = False  # arrived out of an IPsec SA (-m policy --dir in --pol ipsec)


@dataclass
class Trace:
    verdict: str  # ACCEPT | DROP | REJECT
    decided_by: str  # the table/chain whose rule (or policy) decided
    dnat: tuple[str, int | None] | None = None
    snat: str | None = None
    path: list[str] = field(default_factory=list)  # "table chain #rule: line" of every rule that matched

    @property
    def accepted(self) -> bool:
        return self.verdict == "ACCEPT"


class UnknownRule(ValueError):
    """A rule with a match or target this tracer does not understand."""


def trace(tables: dict[str, TableSpec], packet: Packet) -> Trace:
    run = _Run(tables, packet)
    for table, hook in (("mangle", "PREROUTING"), ("nat", "PREROUTING")):
        outcome = run.hook(table, hook)
        if outcome is not None:
            return outcome
    if packet.out is None:
        hooks = (("mangle", "INPUT"), ("filter", "INPUT"))
    else:
        hooks = (("mangle", "FORWARD"), ("filter", "FORWARD"), ("mangle", "POSTROUTING"), ("nat", "POSTROUTING"))
    for table, hook in hooks:
        outcome = run.hook(table, hook)
        if outcome is not None:
            return outcome
    return Trace("ACCEPT", "policy ACCEPT", run.dnat, run.snat, run.path)


class _Run:
    def __init__(self, tables: dict[str, TableSpec], packet: Packet):
        self.tables, self.packet = tables, packet
        self.destination, self.dport = packet.destination, packet.dport
        self.source = packet.source
        self.dnat: tuple[str, int | None] | None = None
        self.snat: str | None = None
        self.path: list[str] = []

    def rules(self, table: str, chain: str) -> list[str]:
        spec = self.tables.get(table)
        if spec is None:
            return []
        return spec.jumps.get(chain, []) if chain in ("PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING") \
            else spec.chains.get(chain, [])

    def hook(self, table: str, chain: str) -> Trace | None:
        verdict = self.walk(table, chain, depth=0)
        if verdict in ("DROP", "REJECT"):
            return Trace(verdict, self.decider, self.dnat, self.snat, self.path)
        if verdict is None:  # fell off the built-in chain: its policy
            policy = self.tables[table].policies.get(chain, "ACCEPT") if table in self.tables else "ACCEPT"
            if policy != "ACCEPT":
                return Trace(policy, f"{table} {chain} policy {policy}", self.dnat, self.snat, self.path)
        return None

    def walk(self, table: str, chain: str, depth: int) -> str | None:
        """ACCEPT/DROP/REJECT, RETURN (out of a user chain), or None (fell off the chain)."""
        if depth > 32:
            raise UnknownRule(f"jump loop at {table} {chain}")
        for number, line in enumerate(self.rules(table, chain), start=1):
            matches, target, options = _parse(line)
            if not all(self.matches(kind, negated, value) for kind, negated, value in matches):
                continue
            self.path.append(f"{table} {chain} #{number}: {line}")
            self.decider = f"{table} {chain} #{number}"
            if target is None or target in ("MARK", "CONNMARK", "LOG"):
                continue  # counted or marked: no verdict
            if target in ("ACCEPT", "DROP", "REJECT"):
                return target
            if target == "RETURN":
                return "RETURN" if depth else None
            if target == "DNAT":
                self.nat_destination(options["--to-destination"])
                return "ACCEPT"  # nat verdicts end the nat table's walk
            if target == "SNAT":
                self.snat = options["--to-source"]
                return "ACCEPT"
            if target == "MASQUERADE":
                self.snat = f"masquerade:{self.packet.out}"
                return "ACCEPT"
            if target in self.tables[table].chains:
                verdict = self.walk(table, target, depth + 1)
                if verdict in ("ACCEPT", "DROP", "REJECT"):
                    return verdict
                continue
            raise UnknownRule(f"target {target!r} in {line!r}")
        return None

    def nat_destination(self, to: str) -> None:
        address, _, ports = to.partition(":")
        port = self.dport
        if ports:
            first, _, rest = ports.partition("-")
            last, _, base = rest.partition("/")
            port = int(first)
            if last and self.dport is not None:  # a range maps port to port from its base
                port = int(first) + self.dport - int(base or first)
        self.dnat, self.destination, self.dport = (address, port), address, port

    def matches(self, kind: str, negated: bool, value: str) -> bool:
        packet = self.packet
        if kind == "-s":
            hit = ip_address(self.source) in ip_network(value, strict=False)
        elif kind == "-d":
            hit = ip_address(self.destination) in ip_network(value, strict=False)
        elif kind in ("-i", "-o"):
            device = packet.into if kind == "-i" else packet.out
            hit = device is not None and (device == value or value.endswith("+") and device.startswith(value[:-1]))
        elif kind == "-p":
            hit = packet.protocol == value
        elif kind == "--dport":
            hit = self.dport is not None and _in_ports(self.dport, value)
        elif kind == "--sport":
            hit = packet.sport is not None and _in_ports(packet.sport, value)
        elif kind == "--ctstate":
            states = {packet.state} | ({"DNAT"} if self.dnat else set())
            hit = bool(states & set(value.split(",")))
        elif kind == "--src-range":
            first, last = value.split("-")
            hit = ip_address(first) <= ip_address(self.source) <= ip_address(last)
        elif kind == "--icmp-type":
            hit = packet.protocol == "icmp"  # the tracer's packets carry no ICMP type: any matches
        elif kind == "--pol":
            hit = packet.ipsec == (value == "ipsec")
        elif kind in ("--dir", "--proto", "-m"):
            hit = True  # qualifiers of another match part (module names, policy direction)
        else:
            raise UnknownRule(f"match {kind} {value}")
        return hit != negated


def _in_ports(port: int, text: str) -> bool:
    first, _, last = text.partition(":")
    return int(first) <= port <= int(last or first)


def _parse(line: str) -> tuple[list[tuple[str, bool, str]], str | None, dict[str, str]]:
    words = shlex.split(line)[2:]  # past "-A CHAIN"
    matches, target, options = [], None, {}
    negated = False
    index = 0
    while index < len(words):
        word = words[index]
        if word == "!":
            negated = True
            index += 1
            continue
        if word == "-j":
            target = words[index + 1]
            rest = words[index + 2:]
            options = {rest[i]: rest[i + 1] for i in range(0, len(rest) - 1, 2) if rest[i].startswith("--")}
            break
        if word in ("--restore-mark", "--save-mark"):
            index += 1
            continue
        if index + 1 >= len(words):
            raise UnknownRule(f"{word!r} without a value in {line!r}")
        matches.append((word, negated, words[index + 1]))
        negated = False
        index += 2
    return matches, target, options
