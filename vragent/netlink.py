"""Links, addresses and routes: changed through pyroute2 (0.7.x in Debian 12, 0.9.x on PyPI)."""

from __future__ import annotations

import json
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    mac: str
    mtu: int
    up: bool = True  # administratively up (IFF_UP); a redundant BACKUP keeps its public NIC down


@contextmanager
def _iproute():
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def _ip_json(*args: str) -> list[dict]:
    from vragent import runner

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
    return links, addresses


def links() -> dict[str, Link]:
    return links_and_addresses()[0]


def default_route() -> tuple[IPv4Address, str] | None:
    for entry in _ip_json("-4", "route", "show", "table", "main", "default"):
        if entry.get("gateway"):
            return IPv4Address(entry["gateway"]), entry.get("dev", "")
    return None


def _index(ipr, device: str) -> int:
    found = ipr.link_lookup(ifname=device)
    if not found:
        raise OSError(f"no such device {device}")
    return found[0]


def add_address(device: str, interface: IPv4Interface) -> None:
    with _iproute() as ipr:
        broadcast = str(interface.network.broadcast_address) if interface.network.prefixlen < 31 else None
        kwargs = {"broadcast": broadcast} if broadcast else {}
        ipr.addr("add", index=_index(ipr, device), address=str(interface.ip),
                 prefixlen=interface.network.prefixlen, **kwargs)


def delete_address(device: str, interface: IPv4Interface) -> None:
    with _iproute() as ipr:
        ipr.addr("del", index=_index(ipr, device), address=str(interface.ip),
                 prefixlen=interface.network.prefixlen)


def set_default_route(route: tuple[IPv4Address, str] | None) -> None:
    with _iproute() as ipr:
        if route is None:
            try:
                ipr.route("del", dst="0.0.0.0/0", table=254)
            except Exception as exc:  # noqa: BLE001 - pyroute2 raises NetlinkError; absent is fine
                if getattr(exc, "code", None) != 3:  # ESRCH: no such route
                    raise
            return
        gateway, device = route
        ipr.route("replace", dst="0.0.0.0/0", gateway=str(gateway), oif=_index(ipr, device), table=254)


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
