"""The remote-access VPN's rules: vr-vpn in vr-INPUT, its clients in vr-FORWARD (pure). Its
public IP's openings in that IP's ingress firewall are the model's (RemoteAccessVpn.public_openings)."""

from __future__ import annotations

from vragent.model import RouterState
from vragent.subsystems.vpn import render as layout
from vragent.tables import TableSpec, host, net

VPN_CLIENT_DEVICES = "ppp+"


def input(state: RouterState, table: TableSpec) -> None:
    """vr-vpn (last in vr-INPUT, absent without a VPN): IKE, NAT-T, ESP and L2TP-in-IPsec
    to the VPN's public IP on its NIC, and DNS from the clients' PPP links to the address
    pppd gives them as DNS server (dnsmasq answers there)."""
    vpn = state.remote_access_vpn
    if vpn is None or state.router_type not in (None, "router"):
        return
    chain = "vr-vpn"
    table.add("vr-INPUT", f"-j {chain}")
    for opening in vpn.public_openings():
        table.add(chain, f"-d {host(vpn.public_ip)} -i {vpn.public_interface} {opening} -j ACCEPT")
    for proto in ("udp", "tcp"):
        table.add(chain, f"-d {layout.dns_server(state)}/32 -i {VPN_CLIENT_DEVICES} -p {proto} -m {proto} "
                         "--dport 53 -j ACCEPT")


def forward(state: RouterState, table: TableSpec) -> None:
    """VPN clients (ppp+, sources in the client range) reach the guest networks, each other,
    and the outside through vr-egress like the guests (source NAT as theirs); guests may
    open connections to the clients, as the incumbent allows."""
    vpn = state.remote_access_vpn
    if vpn is None or state.router_type not in (None, "router"):
        return
    clients = f"-m iprange --src-range {vpn.ip_range}"
    chain, ppp = "vr-FORWARD", VPN_CLIENT_DEVICES
    for guest in state.all_guest_networks():
        table.add(chain, f"-i {ppp} -o {guest.device} {clients} -j ACCEPT")
        table.add(chain, f"-s {net(guest.network)} -i {guest.device} -o {ppp} -j ACCEPT")
    table.add(chain, f"-i {ppp} -o {ppp} {clients} -j ACCEPT")
    for device in state.public_devices():
        table.add(chain, f"-i {ppp} -o {device} {clients} -j vr-egress")
