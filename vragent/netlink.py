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
