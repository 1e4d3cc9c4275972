"""Links, addresses, routes and policy rules: changed through pyroute2 (0.7.x in Debian 12,
0.9.x on PyPI), read through `ip -j`."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface, IPv4Network, IPv6Address, IPv6Interface

from vragent.tables import MAIN_TABLE, STATIC_ROUTE_PROTOCOL
from vragent.values import Link, Route, Rule


@contextmanager
def _iproute():
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _ip_json(*args: str) -> list[dict]:
    from vragent.shell import runner

    return json.loads(runner.run(["ip", "-j", *args]).stdout or "[]")


# Reading goes through `ip -j` (one fork, ~3 ms) rather than pyroute2, whose import alone
# costs ~170 ms: a no-op apply must stay fast. Changes are made through pyroute2.
def links_and_addresses() -> tuple[dict[str, Link], dict[str, set[IPv4Interface]]]:
    links: dict[str, Link] = {}
    addresses: dict[str, set[IPv4Interface]] = {}
    for entry in _ip_json("addr", "show"):
        name = entry["ifname"]
        links[name] = Link(name, entry["ifindex"], entry.get("address", ""), entry.get("mtu", 0),
                           "UP" in entry.get("flags", ()))
        for info in entry.get("addr_info", []):
            if info.get("family") == "inet":
                addresses.setdefault(name, set()).add(IPv4Interface(f"{info['local']}/{info['prefixlen']}"))
            elif info.get("family") == "inet6" and _configured_ipv6(info):
                addresses.setdefault(name, set()).add(IPv6Interface(f"{info['local']}/{info['prefixlen']}"))
    return links, addresses


def _configured_ipv6(info: dict) -> bool:
    """A global IPv6 address someone configured: not link-local, nor one the kernel made
    itself from a router advertisement (SLAAC, privacy), which is never the agent's."""
    return info.get("scope") == "global" and not info.get("dynamic") and not info.get("temporary")


def links() -> dict[str, Link]:
    return links_and_addresses()[0]


def default_route() -> tuple[IPv4Address, str] | None:
    for entry in _ip_json("-4", "route", "show", "table", "main", "default"):
        if entry.get("gateway"):
            return IPv4Address(entry["gateway"]), entry.get("dev", "")
    return None


def default_route6() -> tuple[IPv6Address, str] | None:
    for entry in _ip_json("-6", "route", "show", "table", "main", "default"):
        if entry.get("gateway"):
            return IPv6Address(entry["gateway"]), entry.get("dev", "")
    return None


# `ip -N` prints tables, route types and protocols as numbers, whatever rt_tables names them.
_ROUTE_KINDS = {"1": "unicast", "7": "unreachable", "8": "prohibit", "6": "blackhole", "9": "throw"}


def policy_routing(tables) -> tuple[set[Rule], set[Route]]:
    """Every plain IPv4 rule, and the routes of the numbered `tables`, in one fork; with
    MAIN_TABLE among them, the main table's routes of STATIC_ROUTE_PROTOCOL only."""
    from vragent.shell import runner

    text = runner.run(["ip", "-N", "-4", "-j", "-batch", "-"], input="rule show\nroute show table all\n").stdout
    return parse_policy_dump(text, tables)


def parse_policy_dump(text: str, tables) -> tuple[set[Rule], set[Route]]:
    """`ip -N -4 -j -batch` output of `rule show` and `route show table all`."""
    decoder, position, dumps = json.JSONDecoder(), 0, []
    while (position := _skip_space(text, position)) < len(text):
        dump, position = decoder.raw_decode(text, position)
        dumps.append(dump)
    rule_dump, route_dump = (dumps + [[], []])[:2]
    rules = set()
    for entry in rule_dump:
        if "table" not in entry or not entry["table"].isdigit() or set(entry) - _PLAIN_RULE_KEYS:
            continue
        source = None
        if entry.get("src", "all") != "all":
            source = IPv4Network(f"{entry['src']}/{entry.get('srclen', 32)}")
        fwmark = int(entry["fwmark"], 16) if "fwmark" in entry else None
        rules.add(Rule(entry["priority"], int(entry["table"]), fwmark, source))
    routes = set()
    wanted = {str(table) for table in tables}
    for entry in route_dump:
        table = entry.get("table", str(MAIN_TABLE))  # `ip` prints no table for main's routes
        if table not in wanted:
            continue
        protocol = None
        if table == str(MAIN_TABLE):
            if entry.get("protocol") != str(STATIC_ROUTE_PROTOCOL):
                continue
            protocol = STATIC_ROUTE_PROTOCOL
        dst = IPv4Network("0.0.0.0/0" if entry["dst"] == "default" else entry["dst"])
        gateway = IPv4Address(entry["gateway"]) if "gateway" in entry else None
        kind = _ROUTE_KINDS.get(entry.get("type", "1"), entry.get("type", "unicast"))
        routes.add(Route(int(table), dst, gateway, entry.get("dev"), kind, protocol))
    return rules, routes


# A rule with any other key (iif, tos, fwmask, not, uidrange...) selects something else: never ours.
_PLAIN_RULE_KEYS = {"priority", "src", "srclen", "fwmark", "table", "protocol"}


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position].isspace():
        position += 1
    return position


def _ignore_absent(call, *args, **kwargs) -> None:
    try:
        call(*args, **kwargs)
    except Exception as exc:  # noqa: BLE001 - pyroute2 raises NetlinkError
        if getattr(exc, "code", None) not in (2, 3):  # ENOENT, ESRCH: already gone
            raise


def change_rule(rule: Rule, add: bool) -> None:
    selector = {"fwmark": rule.fwmark} if rule.fwmark is not None else {}
    if rule.source is not None:
        selector |= {"src": str(rule.source.network_address), "src_len": rule.source.prefixlen}
    with _iproute() as ipr:
        if add:
            ipr.rule("add", table=rule.table, priority=rule.priority, **selector)
        else:
            _ignore_absent(ipr.rule, "del", table=rule.table, priority=rule.priority, **selector)


def change_route(route: Route, add: bool) -> None:
    with _iproute() as ipr:
        spec = {"dst": str(route.destination), "table": route.table, "type": route.kind}
        if route.gateway is not None:
            spec["gateway"] = str(route.gateway)
        if route.device is not None:
            spec["oif"] = _index(ipr, route.device)
        if route.protocol is not None:
            spec["proto"] = route.protocol
        if add:
            ipr.route("add", **spec)
        else:
            _ignore_absent(ipr.route, "del", **spec)


def _index(ipr, device: str) -> int:
    found = ipr.link_lookup(ifname=device)
    if not found:
        raise OSError(f"no such device {device}")
    return found[0]


def add_address(device: str, interface: IPv4Interface | IPv6Interface) -> None:
    with _iproute() as ipr:
        ipv4 = interface.version == 4
        broadcast = str(interface.network.broadcast_address) if ipv4 and interface.network.prefixlen < 31 else None
        kwargs = {"broadcast": broadcast} if broadcast else {}
        ipr.addr("add", index=_index(ipr, device), address=str(interface.ip),
                 prefixlen=interface.network.prefixlen, **kwargs)


def delete_address(device: str, interface: IPv4Interface) -> None:
    with _iproute() as ipr:
        ipr.addr("del", index=_index(ipr, device), address=str(interface.ip),
                 prefixlen=interface.network.prefixlen)


def set_default_route(route: tuple[IPv4Address | IPv6Address, str] | None, family: int = 4) -> None:
    import socket

    default, address_family = ("::/0", socket.AF_INET6) if family == 6 else ("0.0.0.0/0", socket.AF_INET)
    with _iproute() as ipr:
        if route is None:
            try:
                ipr.route("del", dst=default, family=address_family, table=254)
            except Exception as exc:  # noqa: BLE001 - pyroute2 raises NetlinkError; absent is fine
                if getattr(exc, "code", None) != 3:  # ESRCH: no such route
                    raise
            return
        gateway, device = route
        ipr.route("replace", dst=default, family=address_family, gateway=str(gateway), oif=_index(ipr, device),
                  table=254)


def set_mtu(device: str, mtu: int) -> None:
    with _iproute() as ipr:
        ipr.link("set", index=_index(ipr, device), mtu=mtu)


def set_link_state(device: str, up: bool) -> None:
    with _iproute() as ipr:
        ipr.link("set", index=_index(ipr, device), state="up" if up else "down")


# -- the netfilter ruleset generation ------------------------------------------------------------
# nf_tables counts committed transactions per network namespace (any table, any tool);
# reads and `iptables-restore --test` leave the count alone. While it has not moved since
# the agent verified its tables, nobody (not even the agent) has changed them, so a no-op
# apply need not read 7,000 rules back. Hand-written (~20 lines of struct): pyroute2's
# nftables module would cost its ~150 ms import on every push.
_NETLINK_NETFILTER = 12
_NFT_MSG_GETGEN = (10 << 8) | 16  # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETGEN
_NFTA_GEN_ID = 1
_SO_NETNS_COOKIE = 71  # Linux 5.14+: a namespace's id, never reused while the host runs


@dataclass(frozen=True)
class RulesetGeneration:
    boot: str  # a generation counts from a namespace's birth; cookies from the host's boot
    netns: int
    generation: int

    def advanced_by(self, commits: int) -> "RulesetGeneration":
        return RulesetGeneration(self.boot, self.netns, self.generation + commits)


def ruleset_generation() -> RulesetGeneration | None:
    """The namespace's nf_tables generation, or None when it cannot vouch for the tables
    (iptables-legacy, an old kernel, any error): the caller then reads them."""
    import os
    import shutil
    import socket
    import struct

    restore = shutil.which("iptables-restore")
    if restore is None or "nft" not in os.path.basename(os.path.realpath(restore)):
        return None  # legacy tables (or a stand-in) are not counted by nf_tables
    try:
        with open("/proc/sys/kernel/random/boot_id") as handle:
            boot = handle.read().strip()
        with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, _NETLINK_NETFILTER) as sock:
            sock.settimeout(1.0)
            netns = struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, _SO_NETNS_COOKIE, 8))[0]
            # nlmsghdr (length, type, flags=NLM_F_REQUEST, seq, pid) + nfgenmsg (family, version, res_id)
            sock.send(struct.pack("=IHHIIBBH", 20, _NFT_MSG_GETGEN, 1, 1, 0, socket.AF_UNSPEC, 0, 0))
            reply = sock.recv(4096)
    except OSError:
        return None
    length, kind = struct.unpack_from("=IH", reply)
    if kind != _NFT_MSG_GETGEN - 1:  # NFT_MSG_NEWGEN answers; NLMSG_ERROR would mean no nf_tables
        return None
    offset = 20
    while offset + 4 <= min(length, len(reply)):
        size, attribute = struct.unpack_from("=HH", reply, offset)
        if size < 4:
            break
        if attribute & 0x7FFF == _NFTA_GEN_ID:
            return RulesetGeneration(boot, netns, struct.unpack_from("!I", reply, offset + 4)[0])
        offset += (size + 3) & ~3
    return None
