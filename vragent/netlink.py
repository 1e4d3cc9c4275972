"""Links, addresses and routes through pyroute2 (0.7.x in Debian 12, 0.9.x on PyPI)."""

from __future__ import annotations

import socket
from contextlib import contextmanager
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface


@dataclass(frozen=True)
class Link:
    name: str
    index: int
    mac: str
    mtu: int


def _attr(msg, name: str):
    """Attribute lookup that works with pyroute2 0.7 and 0.9 message objects."""
    getter = getattr(msg, "get_attr", None)
    if getter is not None:
        try:
            return getter(name)
        except Exception:  # noqa: BLE001 - fall back to scanning below
            pass
    for key, value in msg.get("attrs", ()):
        if key == name:
            return value
    return None


@contextmanager
def _iproute():
    from pyroute2 import IPRoute

    ipr = IPRoute()
    try:
        yield ipr
    finally:
        ipr.close()


def links() -> dict[str, Link]:
    with _iproute() as ipr:
        result = {}
        for msg in ipr.get_links():
            name = _attr(msg, "IFLA_IFNAME")
            result[name] = Link(name, msg["index"], _attr(msg, "IFLA_ADDRESS") or "", _attr(msg, "IFLA_MTU") or 0)
        return result


def addresses() -> dict[str, set[IPv4Interface]]:
    with _iproute() as ipr:
        names = {msg["index"]: _attr(msg, "IFLA_IFNAME") for msg in ipr.get_links()}
        result: dict[str, set[IPv4Interface]] = {}
        for msg in ipr.get_addr(family=socket.AF_INET):
            name = names.get(msg["index"])
            address = _attr(msg, "IFA_LOCAL") or _attr(msg, "IFA_ADDRESS")
            if name and address:
                result.setdefault(name, set()).add(IPv4Interface(f"{address}/{msg['prefixlen']}"))
        return result


def default_route() -> tuple[IPv4Address, str] | None:
    with _iproute() as ipr:
        names = {msg["index"]: _attr(msg, "IFLA_IFNAME") for msg in ipr.get_links()}
        for msg in ipr.get_routes(family=socket.AF_INET, table=254):
            if msg["dst_len"] == 0 and _attr(msg, "RTA_GATEWAY"):
                return IPv4Address(_attr(msg, "RTA_GATEWAY")), names.get(_attr(msg, "RTA_OIF"), "")
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
