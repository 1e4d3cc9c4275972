"""Intake of the management server's pushes: parsing, merge semantics, errors with paths."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

import pytest

from tests.unit import pushes as p
from vragent.errors import InvalidInput
from vragent.model import Direction, PortRange, RouterState
from vragent.pipeline.intake import load_push, merge_documents
from vragent.pipeline.intake import parse_all
from vragent.context import Context


def merged(*documents, state=None, context=None) -> RouterState:
    return merge_documents(state or RouterState(), list(documents), context)


def errors_of(*documents, state=None, context=None) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*documents, state=state, context=context)
    return [str(e) for e in caught.value.errors]


def test_cmdline_gives_the_nic_addresses_and_default_route():
    state = merged(*p.base_network())
    assert state.router_type == "router"
    assert str(state.control_interface) == "169.254.1.10/16"
    assert state.default_gateway == (IPv4Address("198.51.100.1"), "eth2")
    guest = state.all_guest_networks()[0]
    assert (guest.device, str(guest.network), str(guest.router_ip)) == ("eth0", "192.0.2.0/24", "192.0.2.1")


def test_ips_puts_the_source_nat_ip_first_and_removes_with_add_false():
    state = merged(*p.base_network())
    assert [str(x.ip) for x in state.ordered_public_ips()] == ["198.51.100.10", "198.51.100.20", "198.51.100.21"]
    state = merged(p.doc("ip_associations.json.b", p.ips(p.public_ip("198.51.100.20", add=False))), state=state)
    assert [str(x.ip) for x in state.ordered_public_ips()] == ["198.51.100.10", "198.51.100.21"]


def test_forward_rules_merge_on_public_ip_ports_and_protocol():
    state = merged(*p.base_network(), p.doc("forwarding_rules.json.1", p.forwards(
        p.forward("198.51.100.20", "2222:2222", "192.0.2.11", "22:22"))))
    assert state.port_forwards[0].internal_ip == IPv4Address("192.0.2.11")
    # Same (ip, ports, protocol): an update, not a second rule.
    state = merged(p.doc("forwarding_rules.json.2", p.forwards(
        p.forward("198.51.100.20", "2222:2222", "192.0.2.12", "22:22"))), state=state)
    assert [str(r.internal_ip) for r in state.port_forwards] == ["192.0.2.12"]
    state = merged(p.doc("forwarding_rules.json.3", p.forwards(
        p.forward("198.51.100.20", "2222:2222", "192.0.2.12", "22:22", revoke=True))), state=state)
    assert state.port_forwards == ()


def test_firewall_rules_are_keyed_by_id_and_revoked_deletes():
    state = merged(*p.base_network(), p.doc("firewall_rules.json.1", p.firewall(
        p.ingress(901, "198.51.100.20", ports=(2222, 2222), cidrs=("203.0.113.0/24",)),
        p.ingress(903, "198.51.100.21", protocol="icmp", icmp=(8, None)))))
    assert [r.id for r in state.firewall_rules] == ["901", "903"]
    assert state.firewall_rules[0].ports == PortRange(2222, 2222)
    assert state.firewall_rules[0].source_cidrs == (IPv4Network("203.0.113.0/24"),)
    assert (state.firewall_rules[1].icmp_type, state.firewall_rules[1].icmp_code) == (8, None)
    state = merged(p.doc("firewall_rules.json.2", p.firewall(p.ingress(901, "198.51.100.20", revoked=True))),
                   state=state)
    assert [r.id for r in state.firewall_rules] == ["903"]


def test_system_egress_rule_only_sets_the_default_policy():
    state = merged(*p.base_network(), p.doc("firewall_rules.json.1", p.firewall(
        p.egress(902, protocol="all", default_allow=False),
        p.egress(904, ports=(80, 80), dests=("203.0.113.0/24",), default_allow=False))))
    assert state.egress_default_allow is False
    assert [r.id for r in state.firewall_rules] == ["904"]
    assert state.firewall_rules[0].direction is Direction.EGRESS


def test_static_nat_one_entry_per_public_ip():
    state = merged(*p.base_network(), p.doc("staticnat_rules.json.1", p.static_nat("198.51.100.21", "192.0.2.12")))
    assert [(str(n.public_ip), str(n.internal_ip)) for n in state.static_nats] == [("198.51.100.21", "192.0.2.12")]
    state = merged(p.doc("staticnat_rules.json.2", p.static_nat("198.51.100.21", "192.0.2.12", revoke=True)),
                   state=state)
    assert state.static_nats == ()


def test_guestnetwork_cidr_is_a_prefix_length():
    payload = {"type": "guestnetwork", "add": True, "mac_address": p.GUEST_MAC, "device": "eth3",
               "router_guest_ip": "192.0.2.129", "router_guest_netmask": "255.255.255.128",
               "router_guest_gateway": "192.0.2.129", "cidr": "25", "dns": "198.51.100.1",
               "domain_name": "", "mtu": 1450}
    state = merged(p.doc("cmd_line.json", p.cmdline(eth0ip="192.0.2.1", eth0mask="255.255.255.128")),
                   p.doc("guest_network.json.1", payload))
    eth3 = [n for n in state.all_guest_networks() if n.device == "eth3"][0]
    assert str(eth3.network) == "192.0.2.128/25" and eth3.mtu == 1450
    assert eth3.domain == "cloudnine.internal"  # the incumbent's substitute for an empty domain


def test_every_error_is_reported_at_once_with_its_json_path():
    errors = errors_of(*p.base_network(), p.doc("firewall_rules.json.x", p.firewall(
        {"id": 1, "src_ip": "198.51.100.300", "protocol": "tcp", "src_port_range": [10, 5],
         "source_cidr_list": ["203.0.113.0/33"], "traffic_type": "Ingress"},
        {"id": 2, "src_ip": "198.51.100.20", "protocol": "gre", "traffic_type": "Ingress"})))
    assert "firewall_rules.json.x:$.rules[0].src_ip: '198.51.100.300' is not an IPv4 address" in errors
    assert any(e.startswith("firewall_rules.json.x:$.rules[0].src_port_range:") and "first port" in e for e in errors)
    assert any(e.startswith("firewall_rules.json.x:$.rules[0].source_cidr_list[0]:") for e in errors)
    assert any(e.startswith("firewall_rules.json.x:$.rules[1].protocol:") for e in errors)


def test_a_cidr_listed_twice_or_inside_another_of_the_same_rule_is_redundant_not_invalid():
    # The management server passes a rule's CIDR list as the user typed it (the API checks each
    # CIDR, not the list), and the incumbent renders one rule per CIDR: the union is the same.
    state = merged(*p.base_network(), p.doc("firewall_rules.json.x", p.firewall(
        p.ingress(1, "198.51.100.20", cidrs=("203.0.113.128/25", "198.51.100.7/32", "203.0.113.0/24",
                                             "198.51.100.7/32")))))
    assert [str(c) for c in state.firewall_rules[0].source_cidrs] == ["203.0.113.0/24", "198.51.100.7/32"]


def test_port_forwarding_on_an_ip_the_router_does_not_hold():
    errors = errors_of(*p.base_network(), p.doc("forwarding_rules.json.x", p.forwards(
        p.forward("198.51.100.99", "80:80", "192.0.2.11", "80:80"))))
    assert errors == ["forwarding_rules.json.x:$.rules[0]: 198.51.100.99 is not a public IP of this router"]


def test_two_rules_claiming_the_same_public_port():
    errors = errors_of(*p.base_network(), p.doc("forwarding_rules.json.x", p.forwards(
        p.forward("198.51.100.20", "8000:8100", "192.0.2.11", "8000:8100"),
        p.forward("198.51.100.20", "8080:8080", "192.0.2.12", "80:80"))))
    assert len(errors) == 1 and "8080:8080 are already claimed by forwarding_rules.json.x:$.rules[0]" in errors[0]


def test_static_nat_and_port_forwarding_cannot_share_an_ip():
    errors = errors_of(*p.base_network(),
                       p.doc("forwarding_rules.json.x", p.forwards(p.forward("198.51.100.21", "80:80", "192.0.2.11", "80:80"))),
                       p.doc("staticnat_rules.json.x", p.static_nat("198.51.100.21", "192.0.2.12")))
    assert len(errors) == 1 and "static NAT would take all of its ports" in errors[0]


def test_mismatched_port_range_sizes():
    errors = errors_of(*p.base_network(), p.doc("forwarding_rules.json.x", p.forwards(
        p.forward("198.51.100.20", "1000:1010", "192.0.2.11", "20:21"))))
    assert errors[0].startswith("forwarding_rules.json.x:$.rules[0].destination_port_range:")


def test_unknown_device_is_named():
    context = Context(links={"eth0": "02:00:00:00:01:00", "eth1": "x", "eth2": p.PUBLIC_MAC})
    errors = errors_of(p.doc("cmd_line.json", p.cmdline()),
                       p.doc("ip_associations.json.x", p.ips(p.public_ip("198.51.100.30", nic=5))),
                       context=context)
    assert errors == ["ip_associations.json.x:$.ip_address[0].nic_dev_id: unknown device eth5: "
                      "this router has eth0, eth1, eth2"]


def test_an_address_is_released_even_when_its_nic_is_gone():
    # Releasing needs the address only: the NIC of its VLAN may already be unplugged (or its
    # MAC unknown), and refusing would keep a released address on the router.
    links = {"eth0": p.GUEST_MAC, "eth1": "02:00:00:00:01:01", "eth2": p.PUBLIC_MAC, "eth3": "02:00:00:00:01:03"}
    state = merged(p.doc("cmd_line.json", p.cmdline()),
                   p.doc("ips.json.a", p.ips(p.public_ip("198.51.100.10", source_nat=True, first=True),
                                             p.public_ip("203.0.113.130", nic=3))), context=Context(links=links))
    del links["eth3"]
    state = merged(p.doc("ips.json.b", p.ips(p.public_ip("203.0.113.130", nic=3, add=False))), state=state,
                   context=Context(links=links))
    assert [str(x.ip) for x in state.public_ips] == ["198.51.100.10"]


def test_device_found_from_the_vif_mac_when_nic_dev_id_is_omitted():
    entry = p.public_ip("198.51.100.30")
    del entry["nic_dev_id"]
    context = Context(links={"eth0": p.GUEST_MAC, "eth1": "02:00:00:00:01:01", "eth2": p.PUBLIC_MAC})
    state = merged(p.doc("cmd_line.json", p.cmdline()), p.doc("ips.json.x", p.ips(entry)), context=context)
    assert {x.device for x in state.public_ips} == {"eth2"}


def test_unsupported_type_is_a_clear_error():
    errors = errors_of(p.doc("bgp_peers.json.x", {"type": "bgppeers", "peers": []}))
    assert errors == ["bgp_peers.json.x:$.type: 'bgppeers' is a known CloudStack type that is not supported yet"]


def test_other_router_types_are_not_supported_yet():
    errors = errors_of(p.doc("cmd_line.json", p.cmdline(type="ilbvm")))
    assert errors[0].startswith("cmd_line.json:$.cmd_line.type: router type 'ilbvm' is not supported yet")


def test_omitted_null_fields_are_optional():
    rule = p.forward("198.51.100.20", "80:80", "192.0.2.11", "80:80")
    del rule["revoke"]  # Gson omits false booleans' null cousins; a missing flag means "not revoked"
    state = merged(*p.base_network(), p.doc("forwarding_rules.json.1", p.forwards(rule)))
    assert len(state.port_forwards) == 1


BATCH = """#Apache CloudStack Virtual Router Config File
<version>
1.0
</version>
<file>
/var/cache/cloud/ip_associations.json.7c1e
{ips}
</file>
<script>
/opt/cloud/bin/update_config.py ip_associations.json.7c1e
</script>
<file>
/var/cache/cloud/forwarding_rules.json.88aa
{fwd}
</file>
<script>
/opt/cloud/bin/update_config.py forwarding_rules.json.88aa
</script>
"""


def test_batch_cfg_is_split_into_its_files_in_script_order():
    import json
    text = BATCH.format(ips=json.dumps(p.ips(p.public_ip("198.51.100.10", source_nat=True))),
                        fwd=json.dumps(p.forwards(p.forward("198.51.100.10", "80:80", "192.0.2.11", "80:80"))))
    documents = load_push("VR-1234.cfg", text)
    assert [d.name for d in documents] == ["VR-1234.cfg:ip_associations.json.7c1e", "VR-1234.cfg:forwarding_rules.json.88aa"]
    state = merge_documents(RouterState(), [p.doc("cmd_line.json", p.cmdline())] + documents)
    assert len(state.port_forwards) == 1


def test_batch_with_broken_json_names_the_file():
    text = BATCH.format(ips="{not json", fwd="{also not")
    documents = load_push("VR-1234.cfg", text)  # well framed: the JSON is parsed when needed
    with pytest.raises(InvalidInput) as caught:
        parse_all(documents)
    assert [e.path for e in caught.value.errors] == ["VR-1234.cfg:ip_associations.json.7c1e:$",
                                                     "VR-1234.cfg:forwarding_rules.json.88aa:$"]
    assert "(line " in caught.value.errors[0].message


def test_a_badly_framed_batch_reports_its_malformed_json_too():
    text = BATCH.format(ips="{not json", fwd="{}") + "stray line\n"
    with pytest.raises(InvalidInput) as caught:
        load_push("VR-1234.cfg", text)
    paths = [e.path for e in caught.value.errors]
    assert "VR-1234.cfg:ip_associations.json.7c1e:$" in paths and any("line" in p for p in paths)


def test_malformed_json_push():
    with pytest.raises(InvalidInput) as caught:
        merge_documents(RouterState(), load_push("firewall_rules.json.1", '{"type": "firewallrules", '))
    assert caught.value.errors[0].path == "firewall_rules.json.1:$"


from hypothesis import given, strategies as st  # noqa: E402

from vragent.fields import ipv4_or_none  # noqa: E402


@given(st.one_of(st.ip_addresses(v=4).map(str), st.text(alphabet="0123456789.x -", max_size=18)))
def test_fast_ipv4_parser_agrees_with_ipaddress(text):
    import ipaddress

    try:
        expected = ipaddress.IPv4Address(text)
    except ValueError:
        expected = None
    assert ipv4_or_none(text) == expected


@given(st.one_of(st.builds(lambda a, p: f"{a}/{p}", st.ip_addresses(v=4), st.integers(0, 40)),
                 st.text(alphabet="0123456789./x", max_size=20)))
def test_fast_network_parser_agrees_with_ipaddress(text):
    import ipaddress

    from vragent.fields import parse_ipv4_network

    try:
        expected = ipaddress.ip_network(text, strict=False)
        expected = expected if expected.version == 4 else None
    except ValueError:
        expected = None
    assert parse_ipv4_network(text, "p", []) == expected


@given(st.one_of(st.text(alphabet="0123456789:- ", max_size=14), st.integers(-5, 70000),
                 st.lists(st.integers(-5, 70000), max_size=3)))
def test_port_ranges_parse_as_first_last_or_say_why_not(value):
    from vragent.model import PortRange
    from vragent.fields import parse_port_range

    errors: list = []
    parsed = parse_port_range(value, "$.ports", errors)
    if isinstance(value, str):
        parts = value.strip().replace("-", ":").split(":")
    else:
        parts = value if isinstance(value, list) else [value]
    try:
        numbers = [int(p) for p in parts]
        numbers = numbers * 2 if len(numbers) == 1 else numbers
        expected = PortRange(*numbers) if len(numbers) == 2 else None
    except (ValueError, TypeError):
        expected = None
    assert parsed == expected
    assert (errors == []) == (expected is not None)
    assert all(e.path == "$.ports" for e in errors)
