"""`ips` (ip_associations.json): public IPs added to or removed from public NICs.

Entries are keyed by address: `add: true` inserts or moves it, `add: false`
removes it. The NIC is `eth<nic_dev_id>`, or found from `vif_mac_address`. Whether
that NIC may hold a public IP depends on the router type (eth0 guest and eth1 control on
an isolated router, eth0 control and the tiers on a VPC): validate.py checks it after the
merge, when the push's cmdline is known.

An entry with `is_private_gateway: true` (a VPC's private gateway; the management server
sends `nw_type` "Public" for it too) is no public IP: it becomes the router's
PrivateGateway on its NIC, keyed by address like the public IPs (validate.py checks it
is on a VPC router, on a NIC of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vragent.model import PrivateGateway, PublicIp, RouterState, device_index
from vragent.context import Context
from vragent.fields import Fields


@dataclass(frozen=True)
class IpsChange:
    add: tuple[tuple[PublicIp, str], ...]  # (ip, json path)
    remove: tuple[tuple[object, str], ...]
    private_gateways: tuple[tuple[PrivateGateway, str], ...] = ()


def parse(fields: Fields, context: Context) -> IpsChange | None:
    entries = fields.list("ip_address")
    if entries is None:
        return None
    add, remove, private = [], [], []
    for index, entry in enumerate(entries):
        item = Fields(entry, fields.at("ip_address") + f"[{index}]", fields.errors)
        ip = item.ipv4("public_ip")
        wanted = item.boolean("add", True)
        nw_type = (item.string("nw_type", "public") or "public").lower()
        if nw_type != "public":
            item.error("nw_type", f"{nw_type!r} addresses are not supported yet (only public)")
            continue
        if wanted is False:
            # Releasing needs the address only: its VLAN's NIC may be unplugged already.
            if ip is not None:
                remove.append((ip, item.path))
            continue
        device = _device(item, context)
        if ip is None or wanted is None:
            continue
        prefix = item.netmask_prefix("netmask")
        gateway = item.ipv4("gateway", None)
        mtu = item.integer("mtu", None, lo=68, hi=65535)
        if prefix is None or device is None:
            continue
        if item.boolean("is_private_gateway", False):
            private.append((PrivateGateway(
                ip=ip, prefix=prefix, device=device, gateway=gateway,
                source_nat=bool(item.boolean("source_nat", False)),
                mac=(item.string("vif_mac_address", None) or None), mtu=mtu), item.path))
            continue
        add.append((PublicIp(
            ip=ip, prefix=prefix, device=device, gateway=gateway,
            source_nat=bool(item.boolean("source_nat", False)),
            one_to_one_nat=bool(item.boolean("one_to_one_nat", False)),
            first=bool(item.boolean("first_i_p", False)),
            mac=(item.string("vif_mac_address", None) or None),
            mtu=mtu,
        ), item.path))
    return IpsChange(tuple(add), tuple(remove), tuple(private))


def _device(item: Fields, context: Context) -> str | None:
    nic = item.integer("nic_dev_id", None, lo=0, hi=99)
    mac = item.string("vif_mac_address", None)
    if nic is not None:
        device = f"eth{nic}"
        return device if context.check_device(device, item, "nic_dev_id") else None
    if mac:
        device = context.device_for_mac(mac)
        if device is None:
            item.error("vif_mac_address", f"no NIC on this router has MAC {mac}")
        return device
    item.error("nic_dev_id", "is required (or vif_mac_address)")
    return None


def merge(state: RouterState, change: IpsChange) -> RouterState:
    ips = {p.ip: p for p in state.public_ips}
    for ip, _ in change.remove:
        ips.pop(ip, None)
    for pip, _ in change.add:
        ips[pip.ip] = pip
    private = {p.ip: p for p in state.private_gateways}
    for ip, _ in change.remove:
        private.pop(ip, None)
    for pgw, _ in change.private_gateways:
        ips.pop(pgw.ip, None)
        private = {k: p for k, p in private.items() if p.device != pgw.device}  # one per NIC: the newest
        private[pgw.ip] = pgw
    for pip, _ in change.add:
        private.pop(pip.ip, None)
    state = replace(state, private_gateways=tuple(sorted(private.values(), key=lambda p: device_index(p.device))))
    if any(p.source_nat for p, _ in change.add):
        # One source-NAT IP per NIC: the newest claim wins, as in the incumbent's bag.
        claimed = {p.device: p.ip for p, _ in change.add if p.source_nat}
        ips = {ip: (replace(p, source_nat=False) if p.device in claimed and claimed[p.device] != ip
                    and p.source_nat else p) for ip, p in ips.items()}
    return replace(state, public_ips=tuple(sorted(ips.values(), key=lambda p: p.ip)))


def origins(change: IpsChange) -> list[tuple[object, str]]:
    return list(change.add) + list(change.private_gateways)
