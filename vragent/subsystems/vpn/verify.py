"""The VPNs checked against the router: the remote-access VPN's public IP and ranges, site-to-site peers (pure)."""

from __future__ import annotations


from vragent.errors import ValidationError
from vragent.model import ISOLATED_ROUTER, RouterState


def check_remote_access_vpn(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """The VPN's public IP is the router's, its clients' range is nobody else's."""
    from vragent.errors import origin_of

    vpn = state.remote_access_vpn
    if vpn is None:
        return []
    path = origin_of(origins, vpn, "state:remote_access_vpn")
    errors: list[ValidationError] = []

    def error(key: str, message: str) -> None:
        errors.append(ValidationError(f"{path}.{key}", message))

    if state.router_type not in (None, ISOLATED_ROUTER):
        error("vpn_server_ip", f"remote-access VPN is served on isolated routers only (this is a "
                               f"{state.router_type})")
    held = {p.ip: p for p in state.ordered_public_ips()}
    pip = held.get(vpn.public_ip)
    if pip is None:
        error("vpn_server_ip", f"{vpn.public_ip} is not a public IP of this router")
    elif pip.device != vpn.public_interface:
        error("public_interface", f"{vpn.public_ip} is on {pip.device}, not {vpn.public_interface}")
    if any(n.public_ip == vpn.public_ip for n in state.static_nats):
        error("vpn_server_ip", f"{vpn.public_ip} has static NAT: IKE and L2TP would go to the VM")
    clients = vpn.range_networks()
    guests = state.all_guest_networks()
    others = [(f"guest network {n.network} on {n.device}", n.network) for n in guests]
    if state.control_interface is not None:
        others.append((f"control network {state.control_interface.network}", state.control_interface.network))
    others += [(f"public network {p.interface.network} on {p.device}", p.interface.network)
               for p in state.ordered_public_ips()]
    for name, network in dict.fromkeys(others):  # a NIC's public IPs share one network
        if any(c.overlaps(network) for c in clients):
            error("ip_range", f"{vpn.ip_range} overlaps the {name}")
        if vpn.local_ip in network:
            error("local_ip", f"{vpn.local_ip} is in the {name}")
    if vpn.first <= vpn.local_ip <= vpn.last:
        error("local_ip", f"{vpn.local_ip} is inside ip_range {vpn.ip_range} (it would be given to a client)")
    if vpn.local_cidr is not None and guests and not any(vpn.local_cidr.overlaps(n.network) for n in guests):
        error("local_cidr", f"{vpn.local_cidr} is no guest network of this router")
    return errors


def check_site_to_site_vpns(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """Each connection leaves from a public IP of this VPC router, for the VPC, to peer
    networks that are none of the router's own."""
    from vragent.errors import origin_of

    errors: list[ValidationError] = []
    held = {p.ip for p in state.ordered_public_ips()}
    vpc = state.vpc_cidr
    own = [(f"the VPC {vpc}", vpc)] if vpc is not None else []
    own += [(f"tier {n.network} on {n.device}", n.network) for n in state.all_guest_networks()]
    if state.control_interface is not None:
        own.append((f"the control network {state.control_interface.network}", state.control_interface.network))
    own += [(f"the public network {p.interface.network} on {p.device}", p.interface.network)
            for p in state.ordered_public_ips()]
    for vpn in state.site_to_site_vpns:
        path = origin_of(origins, vpn, f"state:site_to_site_vpns[{vpn.peer}]")

        def error(key: str, message: str) -> None:
            errors.append(ValidationError(f"{path}.{key}", message))

        if not state.is_vpc:
            error("peer_gateway_ip", f"site-to-site VPN is served on VPC routers only (this is a "
                                     f"{state.router_type or 'router without cmdline'})")
            continue
        if vpn.local_ip not in held:
            error("local_public_ip", f"{vpn.local_ip} is not a public IP of this router")
        if any(n.public_ip == vpn.local_ip for n in state.static_nats):
            error("local_public_ip", f"{vpn.local_ip} has static NAT: IKE would go to the VM")
        if vpc is not None and vpn.local_cidr != vpc:
            error("local_guest_cidr", f"{vpn.local_cidr} is not this VPC's CIDR {vpc}")
        if vpn.peer in held:
            error("peer_gateway_ip", f"{vpn.peer} is a public IP of this router")
        for cidr in vpn.peer_cidrs:
            for name, network in dict.fromkeys(own):
                if cidr.overlaps(network):
                    error("peer_guest_cidr_list", f"{cidr} overlaps {name}")
                    break
        for other in state.site_to_site_vpns:
            if other.peer < vpn.peer:
                clash = [str(c) for c in vpn.peer_cidrs if any(c.overlaps(o) for o in other.peer_cidrs)]
                if clash:
                    error("peer_guest_cidr_list", f"{', '.join(clash)} overlaps the CIDRs of peer {other.peer}")
    return errors
