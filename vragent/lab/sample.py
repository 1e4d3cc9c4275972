"""Sample CloudStack pushes for the lab network, in the management server's wire format.

Field names and value types follow what CloudStack really sends (Gson with
LOWER_CASE_WITH_UNDERSCORES, nulls omitted), as the reference notes on CloudStack's VR
(cloudstack-vr.md §2.3 and §4.5) describe them.
Each builder returns a plain dict, exactly what json.loads() gives for the pushed file.
Quirks kept on purpose: cmdline values are all strings, `first_i_p`, guestnetwork `cidr`
is a prefix length, port ranges are "a:b" strings for forwarding rules but [a, b] lists
for firewall rules.
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Iterable

from vragent.lab.topology import (
    ALIAS_GATEWAY,
    ALIAS_NETMASK,
    ALIAS_ROUTER_IP,
    CONTROL_NETMASK,
    CONTROL_ROUTER2_IP,
    CONTROL_ROUTER_IP,
    EXTRA_PUBLIC_IPS,
    GUEST6_CIDR,
    GUEST_CIDR,
    GUEST_NETMASK,
    PUBLIC_GATEWAY,
    PUBLIC_NETMASK,
    ROUTER_GUEST_IP,
    ROUTER_GUEST_IP6,
    ROUTER_MACS,
    ROUTER_PUBLIC_IP6,
    SECOND_PUBLIC_GATEWAY,
    SECOND_PUBLIC_MAC,
    SECOND_PUBLIC_NETMASK,
    SHARED_GATEWAY,
    SHARED_ROUTER_IP,
    SOURCE_NAT_IP,
    UPSTREAM_IP6,
)

Payload = dict[str, Any]
PortRange = int | tuple[int, int] | str

DOMAIN = "lab.internal"
DNS = PUBLIC_GATEWAY
# On a redundant pair ROUTER_GUEST_IP is the VRRP gateway and each router has its own.
REDUNDANT_GUEST_IPS = {1: "192.0.2.2", 2: "192.0.2.3"}
# A dual-stack pair: each router its own guest IPv6 address, the gateway (guestgw6) shared.
REDUNDANT_GUEST_IP6S = {1: "2001:db8:1::2", 2: "2001:db8:1::3"}

# Push file names by payload type (VRScripts); configure.py dispatches on the part
# before ".json", so the names must be the real ones.
FILE_NAMES = {
    "cmdline": "cmd_line.json",
    "ips": "ip_associations.json",
    "guestnetwork": "guest_network.json",
    "firewallrules": "firewall_rules.json",
    "forwardrules": "forwarding_rules.json",
    "staticnatrules": "staticnat_rules.json",
    "dhcpentry": "vm_dhcp_entry.json",
    "loadbalancer": "load_balancer.json",
    "networkacl": "network_acl.json",
    "vmdata": "vm_metadata.json",
    "vmpassword": "vm_password.json",
    "monitorservice": "monitor_service.json",
    "ipv6firewallrules": "ipv6_firewall_rules.json",
    "ipaliases": "ip_aliases.json",
    "dhcpconfig": "dhcp.json",
    "remoteaccessvpn": "remote_access_vpn.json",
    "vpnuserlist": "vpn_user_list.json",
    "site2sitevpn": "site_2_site_vpn.json",
    "staticroutes": "static_routes.json",
    "bgppeers": "bgp_peers.json",
}

CACHE_DIR = "/var/cache/cloud/"
UPDATE_CONFIG = "/opt/cloud/bin/update_config.py"
BATCH_HEADER = "#Apache CloudStack Virtual Router Config File\n<version>\n1.0\n</version>\n"


def _router_role(router: int) -> str:
    if router not in (1, 2):
        raise ValueError(f"router must be 1 or 2, not {router}")
    return "vr" if router == 1 else "vr2"


def _pushed(type_: str, **fields: Any) -> Payload:
    # Every management-server payload carries ConfigBase's fields, the boolean included.
    return {"type": type_, **fields, "delete_from_processed_cache": False}


# --- router bootstrap and addresses ---

def cmdline(router: int = 1, redundant: bool = False, ipv6: bool = False) -> Payload:
    """cmd_line.json as the VR's boot script writes it from the hypervisor's cmdline."""
    _router_role(router)
    control_ip = CONTROL_ROUTER_IP if router == 1 else CONTROL_ROUTER2_IP
    guest_ip = REDUNDANT_GUEST_IPS[router] if redundant else ROUTER_GUEST_IP
    config = {
        "type": "router",
        "template": "domP",
        "name": f"r-{100 + router}-VM",
        "eth0ip": guest_ip,
        "eth0mask": GUEST_NETMASK,
        "eth1ip": control_ip,
        "eth1mask": CONTROL_NETMASK,
        "eth2ip": SOURCE_NAT_IP,
        "eth2mask": PUBLIC_NETMASK,
        "gateway": PUBLIC_GATEWAY,
        "dns1": DNS,
        "domain": DOMAIN,
        "guestgw": ROUTER_GUEST_IP,
        "guestbrd": "192.0.2.255",
        "guestcidrsize": "24",
        "cidrsize": "24",
        "dhcprange": ROUTER_GUEST_IP,
        "useextdns": "false",
        "disable_rp_filter": "true",
        "redundant_router": "true" if redundant else "false",
    }
    if redundant:
        config |= {"router_id": "101", "router_pr": str(100 - router), "advert_int": "1"}
    if ipv6:  # a dual-stack isolated network (a lab made with ipv6=True)
        config |= {"eth0ip6": REDUNDANT_GUEST_IP6S[router] if redundant else ROUTER_GUEST_IP6,
                   "eth0ip6prelen": "64", "guestgw6": ROUTER_GUEST_IP6,
                   "guestcidr6size": "64", "eth2ip6": ROUTER_PUBLIC_IP6, "eth2ip6prelen": "64",
                   "ip6gateway": UPSTREAM_IP6, "ip6dns1": UPSTREAM_IP6, "ip6firewall": "true"}
    return {"type": "cmdline", "cmd_line": config}


SHARED_DOMAIN = "shared.internal"


def shared_cmdline() -> Payload:
    """cmd_line.json of a shared network's VR (type dhcpsrvr, Lab(router_type="dhcpsrvr")):
    eth0 on the guest network, eth1 control, no public NIC; `gateway` is the shared
    network's own router, which is also the VR's default route."""
    return {"type": "cmdline", "cmd_line": {
        "type": "dhcpsrvr",
        "template": "domP",
        "name": "r-201-VM",
        "eth0ip": SHARED_ROUTER_IP,
        "eth0mask": GUEST_NETMASK,
        "eth1ip": CONTROL_ROUTER_IP,
        "eth1mask": CONTROL_NETMASK,
        "gateway": SHARED_GATEWAY,
        "dns1": SHARED_GATEWAY,
        "domain": SHARED_DOMAIN,
        "cidrsize": "24",
        "dhcprange": SHARED_ROUTER_IP,
        "useextdns": "false",
        "redundant_router": "false",
    }}


def ip_alias(ip: str = ALIAS_ROUTER_IP, revoke: bool = False, netmask: str = ALIAS_NETMASK,
             count: int = 1) -> Payload:
    """One IpAddressAlias as Gson writes it (`IpAddress` -> ip_address)."""
    return {"revoke": revoke, "ip_address": ip, "netmask": netmask, "count": count}


def ip_aliases(*aliases: Payload) -> Payload:
    """ip_aliases.json (Create/DeleteIpAliasCommand); with no entries: the lab's one alias."""
    return _pushed("ipaliases", aliases=list(aliases or (ip_alias(),)))


def dhcpconfig(*entries: tuple[str, str, str]) -> Payload:
    """dhcp.json (DnsMasqConfigCommand): (router_ip_address, gateway, netmask) per range;
    with no entries: the lab's alias range."""
    import ipaddress

    entries = entries or ((ALIAS_ROUTER_IP, ALIAS_GATEWAY, ALIAS_NETMASK),)
    return _pushed("dhcpconfig", entries=[
        {"router_ip_address": ip, "gateway": gateway, "netmask": netmask,
         "first_ip_of_subnet": str(ipaddress.ip_interface(f"{ip}/{netmask}").network.network_address)}
        for ip, gateway, netmask in entries])


def dhcp_entry(mac: str, ip: str, name: str, gateway: str, dns: str, remove: bool = False) -> Payload:
    """vm_dhcp_entry.json for one VM: its static lease, name, gateway and DNS."""
    return _pushed("dhcpentry", host_name=name, mac_address=mac, ipv4_address=ip, dns_addresses=dns,
                   default_gateway=gateway, static_routes="", default_entry=True, remove=remove)


def ip_entry(public_ip: str, source_nat: bool = False, add: bool = True, one_to_one_nat: bool = False,
             router: int = 1, nic: int = 2) -> Payload:
    """One element of an `ips` push's ip_address list, on the router's public NIC: eth2, or
    with nic=3 eth3 on the second public segment (Lab(second_public=True)), the NIC CloudStack
    gives an IP of another public VLAN than the source NAT IP's."""
    if nic not in (2, 3):
        raise ValueError(f"the lab's public NICs are eth2 and eth3, not eth{nic}")
    second = nic == 3
    return {
        "public_ip": public_ip,
        "source_nat": source_nat,
        "add": add,
        "one_to_one_nat": one_to_one_nat,
        "first_i_p": source_nat,
        "gateway": SECOND_PUBLIC_GATEWAY if second else PUBLIC_GATEWAY,
        "netmask": SECOND_PUBLIC_NETMASK if second else PUBLIC_NETMASK,
        "vif_mac_address": SECOND_PUBLIC_MAC if second else ROUTER_MACS[_router_role(router)]["eth2"],
        "nic_dev_id": nic,
        "new_nic": False,
        "nw_type": "Public",
        "is_private_gateway": False,
    }


def ips(*entries: Payload) -> Payload:
    """ip_associations.json. With no entries: the source NAT IP plus two extra public IPs."""
    if not entries:
        entries = (ip_entry(SOURCE_NAT_IP, source_nat=True), ip_entry(EXTRA_PUBLIC_IPS[0]),
                   ip_entry(EXTRA_PUBLIC_IPS[1]))
    return _pushed("ips", ip_address=list(entries))


def guestnetwork(router: int = 1, redundant: bool = False, add: bool = True) -> Payload:
    """guest_network.json for the lab's guest network on eth0."""
    _router_role(router)
    return _pushed(
        "guestnetwork",
        add=add,
        mac_address=ROUTER_MACS[_router_role(router)]["eth0"],
        device="eth0",
        router_guest_ip=REDUNDANT_GUEST_IPS[router] if redundant else ROUTER_GUEST_IP,
        router_guest_netmask=GUEST_NETMASK,
        router_guest_gateway=ROUTER_GUEST_IP,
        cidr="24",  # a prefix length, despite the name
        dns=ROUTER_GUEST_IP,
        domain_name=DOMAIN,
        mtu=1500,
    )


# --- rules ---

def _port_pair(ports: PortRange) -> tuple[int, int]:
    if isinstance(ports, int):
        return ports, ports
    if isinstance(ports, str):
        first, _, last = ports.partition(":")
        return int(first), int(last or first)
    return ports


def firewall_rule(rule_id: int, protocol: str = "tcp", ports: PortRange | None = None,
                  public_ip: str | None = SOURCE_NAT_IP, source_cidrs: Iterable[str] = ("0.0.0.0/0",),
                  traffic_type: str = "Ingress", revoked: bool = False, icmp_type: int | None = None,
                  icmp_code: int | None = None, dest_cidrs: Iterable[str] | None = None,
                  default_egress_policy: bool = False) -> Payload:
    """One firewall rule. Ingress rules name a public IP; egress rules (public_ip=None,
    traffic_type="Egress") carry default_egress_policy."""
    rule: Payload = {
        "id": rule_id,
        "protocol": protocol,
        "revoked": revoked,
        "already_added": False,
        "source_cidr_list": list(source_cidrs),
        "purpose": "Firewall",
        "traffic_type": traffic_type,
        "guest_cidr": GUEST_CIDR,
        "default_egress_policy": default_egress_policy,
    }
    # Gson drops nulls, so absent values are absent keys.
    if public_ip is not None:
        rule["src_ip"] = public_ip
    if ports is not None:
        rule["src_port_range"] = list(_port_pair(ports))
    if icmp_type is not None:
        rule["icmp_type"] = icmp_type
    if icmp_code is not None:
        rule["icmp_code"] = icmp_code
    if dest_cidrs is not None:
        rule["dest_cidr_list"] = list(dest_cidrs)
    return rule


def firewall_rules(*rules: Payload) -> Payload:
    """firewall_rules.json."""
    return _pushed("firewallrules", rules=list(rules))


def system_egress_rule(default_allow: bool = True, revoked: bool = False, restart: bool = False) -> Payload:
    """The management server's system egress rule: it only carries the offering's default
    policy. Never persisted (id 0), with src_ip "" like every egress rule. A router starts
    with egress closed; a default-allow offering's router start (createDefaultEgressFirewallRule,
    through createFirewallRulesCommands, which reloads both CIDR lists from the database: empty)
    sends it without CIDRs. A network restart or update (applyDefaultEgressFirewallRule,
    through createApplyFirewallRulesCommands, which reloads only the sources) sends it with
    `dest_cidr_list: ["0.0.0.0/0"]` (`restart=True`); VirtualRouterElement.applyFWRules
    passes that one on only for a default-deny network."""
    rule = firewall_rule(0, "all", public_ip="", source_cidrs=(), traffic_type="Egress", revoked=revoked,
                         dest_cidrs=("0.0.0.0/0",) if restart else (), default_egress_policy=default_allow)
    del rule["guest_cidr"]  # null for the isolated router's rules
    return rule


def egress_rule(rule_id: int, protocol: str = "tcp", ports: PortRange | None = None,
                default_allow: bool = False, dest_cidrs: Iterable[str] = (), revoked: bool = False) -> Payload:
    """A user egress rule: src_ip "", the guest CIDR as its source (the API's default when
    the user names none), the offering's default policy. With a default allow it denies,
    with a default deny it allows."""
    rule = firewall_rule(rule_id, protocol, ports, public_ip="", source_cidrs=(GUEST_CIDR,), traffic_type="Egress",
                         revoked=revoked, dest_cidrs=dest_cidrs, default_egress_policy=default_allow)
    del rule["guest_cidr"]
    return rule


def egress_allowed() -> Payload:
    """firewall_rules.json with the system egress rule of a default-allow offering."""
    return firewall_rules(system_egress_rule(True))


def ipv6_firewall_rule(rule_id: int, protocol: str = "tcp", ports: PortRange | None = None,
                       source_cidrs: Iterable[str] = ("::/0",), traffic_type: str = "Ingress",
                       revoked: bool = False, dest_cidrs: Iterable[str] = (),
                       default_egress_policy: bool = True) -> Payload:
    """One rule of ipv6_firewall_rules.json: the firewallrules model, purpose Ipv6Firewall,
    with the guest /64 on every rule and no public IP (IPv6 is routed, not NAT'ed)."""
    rule = firewall_rule(rule_id, protocol, ports, None, source_cidrs, traffic_type, revoked,
                         dest_cidrs=list(dest_cidrs), default_egress_policy=default_egress_policy)
    return rule | {"purpose": "Ipv6Firewall", "guest_cidr": "", "guest_ip6_cidr": GUEST6_CIDR}


def ipv6_system_egress_rule(rule_id: int, default_allow: bool) -> Payload:
    """The management server's system egress rule: it only carries the offering's default."""
    return ipv6_firewall_rule(rule_id, "all", source_cidrs=(), traffic_type="Egress",
                              default_egress_policy=default_allow)


def ipv6_firewall_rules(*rules: Payload) -> Payload:
    """ipv6_firewall_rules.json."""
    return _pushed("ipv6firewallrules", rules=list(rules))


def _port_range(ports: PortRange) -> str:
    first, last = _port_pair(ports)
    return f"{first}:{last}"


def forward_rule(public_ip: str, public_ports: PortRange, internal_ip: str, internal_ports: PortRange,
                 protocol: str = "tcp", revoke: bool = False, source_cidrs: Iterable[str] = ()) -> Payload:
    """One port-forwarding rule: public_ip:public_ports -> internal_ip:internal_ports, with
    its source CIDRs as ForwardingRule carries them: one comma-joined string, "" for none."""
    return {
        "revoke": revoke,
        "protocol": protocol,
        "source_ip_address": public_ip,
        "source_port_range": _port_range(public_ports),
        "destination_ip_address": internal_ip,
        "destination_port_range": _port_range(internal_ports),
        "source_cidr_list": ",".join(source_cidrs),
    }


def forward_rules(*rules: Payload) -> Payload:
    """forwarding_rules.json."""
    return _pushed("forwardrules", rules=list(rules))


def staticnat_rule(public_ip: str, internal_ip: str, revoke: bool = False) -> Payload:
    """One static (1:1) NAT rule; CloudStack sends the port range "0:0" and no protocol."""
    return {
        "revoke": revoke,
        "source_ip_address": public_ip,
        "source_port_range": "0:0",
        "destination_ip_address": internal_ip,
    }


def staticnat_rules(*rules: Payload) -> Payload:
    """staticnat_rules.json."""
    return _pushed("staticnatrules", rules=list(rules))


# --- files and batches ---

# --- guest VM data (metadata server, password server) and monitoring ---

def vmdata(vm_ip: str, hostname: str, userdata: bytes | None = None, **metadata: str) -> Payload:
    """vm_metadata.json for one VM: [folder, file, content] triples as generateVmDataCommand
    sends them (user-data base64 or null first; metadata keys spelt with '-')."""
    import base64

    entries: list[list[Any]] = [["userdata", "user-data", base64.b64encode(userdata).decode() if userdata else None],
                                ["metadata", "local-hostname", hostname], ["metadata", "local-ipv4", vm_ip]]
    entries += [["metadata", key.replace("_", "-"), value] for key, value in metadata.items()]
    return _pushed("vmdata", vm_ip_address=vm_ip, vm_metadata=entries)


def vmpassword(vm_ip: str, password: str) -> Payload:
    return _pushed("vmpassword", ip_address=vm_ip, password=password)


def monitor_service() -> Payload:
    return {"type": "monitorservice", "config": "[ssh]:processname=sshd:servicename=ssh:pidfile=/var/run/sshd.pid:,",
            "disable_monitoring": "false", "health_checks_enabled": True, "health_checks_basic_run_interval": 3,
            "health_checks_advanced_run_interval": 10, "excluded_health_checks": "",
            "health_checks_config": {"maxCpuUsage": "90"}, "delete_from_processed_cache": True}


# --- remote-access VPN (L2TP/IPsec) ---

# The clients' range, as the management server allocates it (10.1.2.0/24 by default in
# the reference), outside every lab network.
VPN_LOCAL_IP = "10.1.2.1"
VPN_IP_RANGE = "10.1.2.2-10.1.2.8"
VPN_PSK = "lab-psk-4Yq8Tz"


def remote_access_vpn(create: bool = True, public_ip: str = SOURCE_NAT_IP, psk: str = VPN_PSK,
                      ip_range: str = VPN_IP_RANGE, local_ip: str = VPN_LOCAL_IP) -> Payload:
    """remote_access_vpn.json as RemoteAccessVpnCfgCommand serialises it."""
    return _pushed("remoteaccessvpn", create=create, ip_range=ip_range, preshared_key=psk,
                   vpn_server_ip=public_ip, local_ip=local_ip, local_cidr=GUEST_CIDR, public_interface="eth2")


def vpn_users(*users: tuple[str, str, bool]) -> Payload:
    """vpn_user_list.json: (user, password, add) triples, as VpnUsersCfgCommand sends them."""
    return _pushed("vpnuserlist", vpn_users=[{"user": u, "password": pw, "add": add} for u, pw, add in users])


def push_file_name(payload: Payload) -> str:
    """The name the management server gives the pushed file, e.g. ip_associations.json.<uuid>.

    cmd_line.json is written on the VR itself and never gets a uuid.
    """
    base = FILE_NAMES[payload["type"]]
    return base if payload["type"] == "cmdline" else f"{base}.{uuid.uuid4()}"


def named(*payloads: Payload) -> list[tuple[str, Payload]]:
    """Pair each payload with a fresh push file name, ready for batch_cfg()."""
    return [(push_file_name(payload), payload) for payload in payloads]


def wire_json(payload: Payload) -> str:
    """Single-line JSON as Gson writes it: no spaces, no HTML or non-ASCII escaping."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


def batch_file_name() -> str:
    """The name of an aggregated batch in /var/cache/cloud: VR-<uuid>.cfg."""
    return f"VR-{uuid.uuid4()}.cfg"


def batch_cfg(items: Iterable[tuple[str, Payload]]) -> str:
    """An aggregated VR-<uuid>.cfg: a <file> block and an update_config.py <script> per item
    (with `false` when the payload asks to be kept out of the archive, as
    AbstractConfigItemFacade.generateConfigItems writes it)."""
    blocks = [BATCH_HEADER]
    for name, payload in items:
        keep = " false" if payload.get("delete_from_processed_cache") else ""
        blocks.append(f"<file>\n{CACHE_DIR}{name}\n{wire_json(payload)}\n</file>\n")
        blocks.append(f"<script>\n{UPDATE_CONFIG} {name}{keep}\n</script>\n")
    return "".join(blocks)


# --- routed networks (ROUTED mode, 4.20+) and their BGP peers ---

ROUTER_AS, UPSTREAM_AS = 65100, 65001  # private AS numbers (RFC 6996)
GUEST_NETWORK_ID = 205
BGP_PASSWORD = "lab-Bgp-md5!"


def routed_cmdline() -> Payload:
    """cmd_line.json of a routed isolated network's router (createGuestBootLoadArgs adds
    is_routed=true for a ROUTED offering; the router keeps its public NIC and IP)."""
    payload = cmdline()
    payload["cmd_line"]["is_routed"] = "true"
    return payload


def routing_firewall_rule(rule_id: int, protocol: str = "tcp", ports: PortRange | None = None,
                          source_cidrs: Iterable[str] = ("0.0.0.0/0",), dest_cidrs: Iterable[str] = (),
                          revoked: bool = False) -> Payload:
    """An ingress routing firewall rule (createRoutingFirewallRule): no public IP, so no
    src_ip (Gson drops the null); it admits its sources to its destinations in the guest
    network."""
    return firewall_rule(rule_id, protocol, ports, public_ip=None, source_cidrs=source_cidrs,
                         dest_cidrs=list(dest_cidrs), revoked=revoked)


def bgp_peer(peer_id: int = 1, network_id: int = GUEST_NETWORK_ID, cidr: str = GUEST_CIDR,
             ip4: str | None = PUBLIC_GATEWAY, peer_as: int = UPSTREAM_AS, network_as: int = ROUTER_AS,
             password: str | None = None, multihop: int | None = None, ip6: str | None = None,
             cidr6: str | None = None) -> Payload:
    """One BgpPeerTO as Gson writes it (nulls left out, details keyed by BgpPeer.Detail)."""
    peer: Payload = {"peer_id": peer_id, "peer_as_number": peer_as, "network_id": network_id,
                     "network_as_number": network_as}
    for key, value in (("ip4_address", ip4), ("ip6_address", ip6), ("peer_password", password),
                       ("guest_ip4_cidr", cidr if ip4 else None), ("guest_ip6_cidr", cidr6)):
        if value is not None:
            peer[key] = value
    if multihop is not None:
        peer["details"] = {"EBGP_MultiHop": str(multihop)}
    return peer


def bgp_peers(*peers: Payload) -> Payload:
    """bgp_peers.json (SetBgpPeersCommand): the whole list, each push replaces it."""
    return _pushed("bgppeers", peers=list(peers))
