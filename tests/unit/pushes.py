"""Wire-format pushes for unit tests, shaped exactly like the management server's."""

from __future__ import annotations

import json

from vragent.pipeline.intake import Document

GUEST_MAC = "02:00:00:00:01:00"
PUBLIC_MAC = "02:00:00:00:01:02"


def doc(name: str, payload: dict) -> Document:
    return Document(name, json.loads(json.dumps(payload)))


def cmdline(**overrides) -> dict:
    values = {"type": "router", "name": "r-101-VM", "template": "domP",
              "eth0ip": "192.0.2.1", "eth0mask": "255.255.255.0",
              "eth1ip": "169.254.1.10", "eth1mask": "255.255.0.0",
              "eth2ip": "198.51.100.10", "eth2mask": "255.255.255.0", "gateway": "198.51.100.1",
              "dns1": "198.51.100.1", "domain": "lab.internal", "useextdns": "false",
              "redundant_router": "false", "guestgw": "192.0.2.1"}
    values.update(overrides)
    return {"type": "cmdline", "cmd_line": values}


def public_ip(ip: str, add: bool = True, source_nat: bool = False, first: bool = False, nic: int = 2) -> dict:
    return {"public_ip": ip, "source_nat": source_nat, "add": add, "one_to_one_nat": False,
            "first_i_p": first, "gateway": "198.51.100.1", "netmask": "255.255.255.0",
            "vif_mac_address": PUBLIC_MAC, "nic_dev_id": nic, "new_nic": False, "nw_type": "Public",
            "is_private_gateway": False}


def ips(*entries: dict) -> dict:
    return {"type": "ips", "ip_address": list(entries)}


def ingress(rule_id: int, ip: str, protocol: str = "tcp", ports=(22, 22), cidrs=("0.0.0.0/0",),
            revoked: bool = False, icmp=(None, None)) -> dict:
    rule = {"id": rule_id, "src_ip": ip, "protocol": protocol, "revoked": revoked, "already_added": False,
            "source_cidr_list": list(cidrs), "purpose": "Firewall", "traffic_type": "Ingress",
            "guest_cidr": "192.0.2.0/24", "default_egress_policy": False}
    if protocol in ("tcp", "udp"):
        rule["src_port_range"] = list(ports)
    if protocol == "icmp":
        rule["icmp_type"], rule["icmp_code"] = icmp[0] if icmp[0] is not None else -1, icmp[1] if icmp[1] is not None else -1
    return rule


def egress(rule_id: int, protocol: str = "tcp", ports=None, dests=(), default_allow: bool = False,
           revoked: bool = False) -> dict:
    rule = {"id": rule_id, "protocol": protocol, "revoked": revoked, "already_added": False,
            "source_cidr_list": [], "dest_cidr_list": list(dests), "purpose": "Firewall",
            "traffic_type": "Egress", "guest_cidr": "192.0.2.0/24", "default_egress_policy": default_allow}
    if ports:
        rule["src_port_range"] = list(ports)
    return rule


def firewall(*rules: dict) -> dict:
    return {"type": "firewallrules", "rules": list(rules)}


def forward(public: str, public_ports: str, internal: str, internal_ports: str, protocol: str = "tcp",
            revoke: bool = False) -> dict:
    return {"revoke": revoke, "protocol": protocol, "source_ip_address": public,
            "source_port_range": public_ports, "destination_ip_address": internal,
            "destination_port_range": internal_ports}


def forwards(*rules: dict) -> dict:
    return {"type": "forwardrules", "rules": list(rules)}


def static_nat(public: str, internal: str, revoke: bool = False) -> dict:
    return {"type": "staticnatrules", "rules": [{"revoke": revoke, "source_ip_address": public,
                                                 "source_port_range": "0:0", "destination_ip_address": internal}]}


def base_network() -> list[Document]:
    return [doc("cmd_line.json", cmdline()),
            doc("ip_associations.json.a1", ips(public_ip("198.51.100.10", source_nat=True, first=True),
                                               public_ip("198.51.100.20"), public_ip("198.51.100.21")))]
