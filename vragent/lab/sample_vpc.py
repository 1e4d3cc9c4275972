"""Sample pushes for a VPC lab (Lab(router_type="vpcrouter")), in the management server's
wire format (cloudstack-vr-wave2.md §1.1-1.3): a `vpcrouter` cmdline (eth0 control), the
source-NAT IP on eth1, one `guestnetwork` per tier and `networkacl` pushes per tier; with
Lab(..., private_gateway=True), the private gateway on eth4 (its `ips` entry and ACL, §1.4)
and `staticroutes` through it (§1.5)."""

from __future__ import annotations

from typing import Any

from vragent.lab.sample import DNS, _pushed
from vragent.lab.topology import (CONTROL_NETMASK, CONTROL_ROUTER2_IP, CONTROL_ROUTER_IP, PGW_CIDR, PGW_DEVICE, PGW_GATEWAY, PGW_NETMASK,
                                  PGW_REMOTE_CIDR, PGW_ROUTER_IP, PGW_ROUTER_MAC, PUBLIC_GATEWAY, PUBLIC_NETMASK,
                                  SECOND_PUBLIC_GATEWAY, SECOND_PUBLIC_NETMASK, SOURCE_NAT_IP, VPC_CIDR,
                                  VPC_ROUTER2_MACS, VPC_ROUTER_MACS, VPC_SECOND_PUBLIC_DEVICE, VPC_TIERS, VpcTier)

Payload = dict[str, Any]
DOMAIN = "vpc.lab.internal"
ANY = "0.0.0.0/0,::/0"  # how the management server sends an empty CIDR list


def tier(number: int) -> VpcTier:
    return VPC_TIERS[number - 1]


def cmdline(**overrides: str) -> Payload:
    """cmd_line.json of a VPC router: only the control NIC's address is on the cmdline."""
    config = {
        "type": "vpcrouter",
        "template": "domP",
        "name": "r-201-VM",
        "eth0ip": CONTROL_ROUTER_IP,
        "eth0mask": CONTROL_NETMASK,
        "vpccidr": VPC_CIDR,
        "domain": DOMAIN,
        "dns1": DNS,
        "source_nat_ip": SOURCE_NAT_IP,
        "has_public_network": "true",
        "redundant_router": "false",
        "useextdns": "false",
        "disable_rp_filter": "true",
        **overrides,
    }
    return {"type": "cmdline", "cmd_line": config}


def ip_entry(public_ip: str, source_nat: bool = False, add: bool = True, one_to_one_nat: bool = False,
             nic: int = 1) -> Payload:
    """One public IP on eth1, the VPC router's first public NIC, or with nic=4 on eth4, the
    further public VLAN of Lab(router_type="vpcrouter", second_public=True)."""
    if nic not in (1, 4):
        raise ValueError(f"the VPC lab's public NICs are eth1 and eth4, not eth{nic}")
    second = f"eth{nic}" == VPC_SECOND_PUBLIC_DEVICE
    return {"public_ip": public_ip, "source_nat": source_nat, "add": add, "one_to_one_nat": one_to_one_nat,
            "first_i_p": source_nat, "gateway": SECOND_PUBLIC_GATEWAY if second else PUBLIC_GATEWAY,
            "netmask": SECOND_PUBLIC_NETMASK if second else PUBLIC_NETMASK,
            "vif_mac_address": VPC_ROUTER_MACS[f"eth{nic}"], "nic_dev_id": nic, "new_nic": False,
            "nw_type": "Public", "is_private_gateway": False, "mtu": 1500}


def ips(*entries: Payload) -> Payload:
    return _pushed("ips", ip_address=list(entries or (ip_entry(SOURCE_NAT_IP, source_nat=True),)))


def guestnetwork(number: int, add: bool = True, mtu: int = 1500) -> Payload:
    """guest_network.json of tier `number` (1: eth2, 2: eth3); `cidr` is a prefix length."""
    t = tier(number)
    return _pushed("guestnetwork", add=add, mac_address=VPC_ROUTER_MACS[t.device], device=t.device,
                   router_guest_ip=t.router_ip, router_guest_netmask="255.255.255.0",
                   router_guest_gateway=t.router_ip, cidr=str(t.prefix), dns=DNS,
                   domain_name=f"tier{number}.{DOMAIN}", is_vr_guest_gateway=True, network_id=200 + number,
                   mtu=mtu)


def dhcp_entry(number: int, name: str) -> Payload:
    t = tier(number)
    return _pushed("dhcpentry", host_name=name, mac_address=t.vm_mac, ipv4_address=t.vm_ip,
                   dns_addresses=t.router_ip, default_gateway=t.router_ip, static_routes="",
                   default_entry=True, remove=False)


def acl_rule(type_: str = "tcp", ports: int | tuple[int, int] | None = None, cidr: str = ANY,
             allowed: bool = True, protocol: int | None = None, icmp: tuple[int, int] | None = None) -> Payload:
    """One item of ingress_rules/egress_rules as SetNetworkACLCommand renders it."""
    rule: Payload = {"type": type_, "cidr": cidr, "allowed": allowed}
    if type_ in ("tcp", "udp"):
        first, last = (ports, ports) if isinstance(ports, int) else (ports or (0, 0))
        rule |= {"first_port": first, "last_port": last}
    if type_ == "icmp":
        rule |= {"icmp_type": icmp[0] if icmp else -1, "icmp_code": icmp[1] if icmp else -1}
    if type_ == "protocol":
        rule["protocol"] = protocol
    return rule


def network_acl(number: int, ingress: list[Payload] | None = None, egress: list[Payload] | None = None) -> Payload:
    """network_acl.json: the whole ACL of tier `number`."""
    t = tier(number)
    return _pushed("networkacl", device=t.device, mac_address=VPC_ROUTER_MACS[t.device], private_gateway_acl=False,
                   nic_ip=t.router_ip, nic_netmask=str(t.prefix), ingress_rules=list(ingress or []),
                   egress_rules=list(egress or []))


def vpc(tiers: int = 2) -> list[Payload]:
    """What a new VPC router gets first: cmdline, its source-NAT IP, its tiers."""
    return [cmdline(), ips(), *(guestnetwork(n) for n in range(1, tiers + 1))]


# The site-to-site peer: the upstream host (the public gateway) with the "internet"
# 203.0.113.0/25 behind it (UPSTREAM_SOURCES live there), and a second, absent peer.
S2S_PEER, S2S_PEER_CIDR = PUBLIC_GATEWAY, "203.0.113.0/25"
S2S_SECOND_PEER, S2S_SECOND_CIDR = "192.0.2.200", "192.0.2.0/24"
S2S_PSK = "s2s-Lab-Key-7"


def site2sitevpn(peer: str = S2S_PEER, cidrs: str = S2S_PEER_CIDR, psk: str = S2S_PSK, create: bool = True,
                 **overrides: Any) -> Payload:
    """site_2_site_vpn.json as Site2SiteVpnCfgCommand serialises it."""
    fields = {"local_public_ip": SOURCE_NAT_IP, "local_guest_cidr": VPC_CIDR, "local_public_gateway": PUBLIC_GATEWAY,
              "peer_gateway_ip": peer, "peer_guest_cidr_list": cidrs, "esp_policy": "aes128-sha1",
              "ike_policy": "aes128-sha1;modp1536", "ipsec_psk": psk, "ike_lifetime": 86400, "esp_lifetime": 3600,
              "create": create, "dpd": False, "passive": False, "encap": False, "split_connections": False,
              "ike_version": "ike"}
    return _pushed("site2sitevpn", **(fields | overrides))


def private_gateway_entry(add: bool = True, source_nat: bool = False, **overrides: Any) -> Payload:
    """The private gateway's `ips` entry as createVpcAssociatePrivateIPCommands sends it
    (nw_type "Public", is_private_gateway true) on eth4, in IpAddress's key order. No `mtu`:
    it sets one only when the private network has a private MTU (and then the public one)."""
    return {"public_ip": PGW_ROUTER_IP, "source_nat": source_nat, "add": add, "one_to_one_nat": False,
            "first_i_p": False, "gateway": PGW_GATEWAY, "netmask": PGW_NETMASK, "vif_mac_address": PGW_ROUTER_MAC,
            "nic_dev_id": int(PGW_DEVICE[3:]), "new_nic": False, "nw_type": "Public", "is_private_gateway": True,
            **overrides}


def private_gateway_acl(ingress: list[Payload] | None = None, egress: list[Payload] | None = None) -> Payload:
    """network_acl.json of the private gateway (private_gateway_acl true): ingress guards the
    VPC's traffic out to the private network (sources), egress what comes in from it."""
    return _pushed("networkacl", device=PGW_DEVICE, mac_address=PGW_ROUTER_MAC, private_gateway_acl=True,
                   nic_ip=PGW_ROUTER_IP, nic_netmask=PGW_CIDR.split("/")[1], ingress_rules=list(ingress or []),
                   egress_rules=list(egress or []))


def static_route(network: str = PGW_REMOTE_CIDR, gateway: str = PGW_GATEWAY, revoke: bool = False,
                 ip_address: str | None = PGW_ROUTER_IP) -> Payload:
    route: Payload = {"revoke": revoke, "gateway": gateway, "network": network}
    if ip_address is not None:  # absent for a route created with a next hop only (nulls are omitted)
        route["ip_address"] = ip_address
    return route


def static_routes(*routes: Payload) -> Payload:
    """static_routes.json (SetStaticRouteConfigItem)."""
    return _pushed("staticroutes", routes=list(routes or (static_route(),)))


# -- a redundant VPC pair (Lab(router_type="vpcrouter", routers=2)) -------------------------------
# Each router has its own address in every tier; the tier's gateway (what the VMs use) is the
# VRRP VIP, the network's gateway the management server sends as router_guest_gateway.
PAIR_TIER_IPS = {1: ("10.70.1.2", "10.70.2.2"), 2: ("10.70.1.3", "10.70.2.3")}
PAIR_VPC_ID = "201"  # router_id: the VPC's id, the same on both routers (VRID)
# router_password: the decimal of SHA-512(VPC uuid), as createRedundantRouterArgs builds it.
PAIR_PASSWORD = "8375209387155716427315780117"


def pair_macs(router: int) -> dict[str, str]:
    return VPC_ROUTER_MACS if router == 1 else VPC_ROUTER2_MACS


def pair_cmdline(router: int, **overrides: str) -> Payload:
    """cmd_line.json of router 1 or 2 of a redundant VPC pair (createRedundantRouterArgs: no
    router_pr, no guestgw: a VPC's gateways come with its tiers)."""
    values = {"name": f"r-{200 + router}-VM", "eth0ip": CONTROL_ROUTER_IP if router == 1 else CONTROL_ROUTER2_IP,
              "redundant_router": "true", "advert_int": "1", "router_id": PAIR_VPC_ID,
              "router_password": PAIR_PASSWORD, "redundant_state": "PRIMARY" if router == 1 else "BACKUP"}
    return cmdline(**(values | overrides))


def pair_guestnetwork(router: int, number: int, add: bool = True) -> Payload:
    """A tier on one router of the pair: its own address, the tier's gateway as the VIP."""
    network = guestnetwork(number, add=add)
    return {**network, "mac_address": pair_macs(router)[tier(number).device],
            "router_guest_ip": PAIR_TIER_IPS[router][number - 1], "router_guest_gateway": tier(number).router_ip}


def pair_network_acl(router: int, number: int, ingress: list[Payload] | None = None,
                     egress: list[Payload] | None = None) -> Payload:
    acl = network_acl(number, ingress, egress)
    return {**acl, "mac_address": pair_macs(router)[tier(number).device],
            "nic_ip": PAIR_TIER_IPS[router][number - 1]}


def pair_vpc(router: int, tiers: int = 2, **cmdline_overrides: str) -> list[Payload]:
    """What each router of a redundant VPC pair gets first: cmdline, source-NAT IP, tiers."""
    return [pair_cmdline(router, **cmdline_overrides), ips(),
            *(pair_guestnetwork(router, n) for n in range(1, tiers + 1))]


# -- a dual-stack VPC (Lab(router_type="vpcrouter", ipv6=True)) -----------------------------------

def tier6(number: int) -> str:
    from vragent.lab.topology import VPC_TIER6_CIDRS

    return VPC_TIER6_CIDRS[tier(number).device]


def dual_stack_guestnetwork(number: int, add: bool = True, router_ip6: str | None = None,
                            gateway6: str | None = None) -> Payload:
    """guest_network.json of a dual-stack tier as SetGuestNetworkConfigItem sends it: the
    router's address in the tier's /64 (::1), the tier's IPv6 gateway, RDNSS, and the VPC's
    public IPv6 with its upstream gateway."""
    from vragent.lab.topology import ROUTER_PUBLIC_IP6, UPSTREAM_IP6

    prefix = tier6(number).split("/")[0]
    own = router_ip6 or f"{prefix}1"
    return {**guestnetwork(number, add=add), "router_guest_ip6": own, "router_guest_ip6_gateway": gateway6 or own,
            "router_guest_ip6_cidr": tier6(number), "cidr6": "64", "dns6": UPSTREAM_IP6,
            "router_ip6": ROUTER_PUBLIC_IP6, "router_ip6_gateway": UPSTREAM_IP6, "router_ip6_cidr": "2001:db8:ff::/64"}


def dual_stack_vpc(tiers: int = 2) -> list[Payload]:
    return [cmdline(), ips(), *(dual_stack_guestnetwork(n) for n in range(1, tiers + 1))]


def remote_access_vpn(create: bool = True, public_ip: str = SOURCE_NAT_IP) -> Payload:
    """remote_access_vpn.json for a VPC router, as CommandSetupHelper.createApplyVpnCommands
    builds it: RemoteAccessVpnCfgCommand with vpcEnabled (public_interface eth1) and the
    VPC's CIDR as local_cidr."""
    from vragent.lab.sample import VPN_IP_RANGE, VPN_LOCAL_IP, VPN_PSK

    return _pushed("remoteaccessvpn", create=create, ip_range=VPN_IP_RANGE, preshared_key=VPN_PSK,
                   vpn_server_ip=public_ip, local_ip=VPN_LOCAL_IP, local_cidr=VPC_CIDR, public_interface="eth1")
