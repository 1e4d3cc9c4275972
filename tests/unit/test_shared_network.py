"""A shared network's VR (cmdline type dhcpsrvr) and `ipaliases`: parse, validate, merge,
persist and render (pure; golden files in golden_shared/)."""

from __future__ import annotations

import json
from ipaddress import IPv4Address
from pathlib import Path

import jsonschema
import pytest

from tests.unit import golden
from tests.unit import pushes as p
from tests.unit.test_state import SCHEMA
from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.subsystems.network import render as addresses, sysctl
from vragent.subsystems.dhcp import render as dnsmasq
from vragent.subsystems.guestdata import render as metadata
from vragent.pipeline import netfilter
from vragent.pipeline.intake import Document, merge_documents

GOLDEN = Path(__file__).parent / "golden_shared"
CASES = sorted(GOLDEN.glob("*.json"))
ROUTER_IP, GATEWAY = "192.0.2.2", "192.0.2.254"
ALIAS_IP, ALIAS_GATEWAY = "10.2.0.2", "10.2.0.1"


def shared_cmdline(**overrides) -> dict:
    values = {"type": "dhcpsrvr", "name": "r-201-VM", "template": "domP",
              "eth0ip": ROUTER_IP, "eth0mask": "255.255.255.0",
              "eth1ip": "169.254.1.10", "eth1mask": "255.255.0.0",
              "gateway": GATEWAY, "dns1": GATEWAY, "domain": "shared.internal",
              "useextdns": "false", "redundant_router": "false"}
    values.update(overrides)
    return {"type": "cmdline", "cmd_line": {k: v for k, v in values.items() if v is not None}}


def alias(ip: str = ALIAS_IP, netmask: str | None = "255.255.255.0", revoke: bool = False, **extra) -> dict:
    entry = {"revoke": revoke, "ip_address": ip, "count": 1, **extra}
    if netmask is not None:
        entry["netmask"] = netmask
    return entry


def aliases(*entries: dict) -> dict:
    return {"type": "ipaliases", "aliases": list(entries) or [alias()], "delete_from_processed_cache": False}


def dhcpconfig(ip: str = ALIAS_IP, gateway: str = ALIAS_GATEWAY) -> dict:
    return {"type": "dhcpconfig", "entries": [{"router_ip_address": ip, "gateway": gateway,
                                               "netmask": "255.255.255.0", "first_ip_of_subnet": "10.2.0.0"}]}


def dhcp_entry(mac: str, ip: str, name: str, gateway: str) -> dict:
    return {"type": "dhcpentry", "host_name": name, "mac_address": mac, "ipv4_address": ip,
            "dns_addresses": ROUTER_IP, "default_gateway": gateway, "static_routes": "",
            "default_entry": True, "remove": False}


def docs(*payloads: dict) -> list[Document]:
    return [p.doc(f"push{i}.json.{i}", payload) for i, payload in enumerate(payloads)]


def merged(*payloads: dict, state: RouterState | None = None) -> RouterState:
    return merge_documents(state or RouterState(), docs(*payloads))


def errors_of(*payloads: dict, state: RouterState | None = None) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*payloads, state=state)
    return [str(e) for e in caught.value.errors]


# -- cmdline ---------------------------------------------------------------------------

def test_a_dhcpsrvr_has_guest_and_control_nics_and_routes_via_the_shared_networks_gateway():
    state = merged(shared_cmdline())
    assert state.is_dhcp_server and state.serves_guests
    assert state.default_gateway == (IPv4Address(GATEWAY), "eth0")
    (guest,) = state.all_guest_networks()
    assert (str(guest.router_ip), str(guest.gateway)) == (ROUTER_IP, GATEWAY)
    assert state.ordered_public_ips() == () and state.own_guest_addresses() == {IPv4Address(ROUTER_IP): "eth0"}
    assert merged(shared_cmdline(guestgw="192.0.2.253")).all_guest_networks()[0].gateway == IPv4Address("192.0.2.253")


@pytest.mark.parametrize("overrides, expected", [
    ({"eth2ip": "198.51.100.10", "eth2mask": "255.255.255.0"},
     "push0.json.0:$.cmd_line.eth2ip: a dhcpsrvr router has no public NIC"),
    ({"redundant_router": "true"}, "push0.json.0:$.cmd_line.redundant_router: a redundant dhcpsrvr pair"),
    ({"gateway": "198.51.100.1"}, "push0.json.0:$.cmd_line.gateway: the shared network's gateway"),
    ({"gateway": None}, "push0.json.0:$.cmd_line.gateway: the shared network's gateway"),
    ({"gateway": ROUTER_IP}, "push0.json.0:$.cmd_line.gateway: 192.0.2.2 is the router's own address"),
    ({"guestgw": "10.9.9.9"}, "push0.json.0:$.cmd_line.guestgw: 10.9.9.9 is outside the guest network"),
    ({"eth0ip": None}, "push0.json.0:$.cmd_line.eth0ip: is required"),
])
def test_a_dhcpsrvr_cmdline_that_would_make_the_vr_a_gateway_or_give_it_a_public_side_is_refused(overrides, expected):
    errors = errors_of(shared_cmdline(**overrides))
    assert any(e.startswith(expected) for e in errors), errors


def test_a_dual_stack_shared_networks_ipv6_keys_are_kept_and_not_acted_on():
    state = merged(shared_cmdline(eth0ip6="2001:db8:1::2", eth0ip6prelen="64", ip6gateway="2001:db8:1::1"))
    assert state.config["eth0ip6"] == "2001:db8:1::2" and state.ipv6 is None
    assert addresses.render(state).default_route6 is None
    assert not any(key.startswith("net.ipv6") for key in sysctl.render(state))


# -- refused types ---------------------------------------------------------------------

@pytest.mark.parametrize("payload", [
    p.forwards(p.forward(ROUTER_IP, "2222:2222", "192.0.2.11", "22:22")),
    p.static_nat(ROUTER_IP, "192.0.2.11"),
    p.firewall(p.ingress(1, ROUTER_IP)),
    p.firewall(),  # even an empty one: the type itself has nothing to act on
    p.ips(p.public_ip("198.51.100.10", source_nat=True)),
    {"type": "ipv6firewallrules", "rules": []},
    {"type": "loadbalancer", "rules": []},
], ids=lambda payload: payload["type"] + ("-empty" if payload.get("rules") == [] else ""))
def test_nat_firewall_public_and_lb_types_are_refused_by_type_even_before_the_cmdline(payload):
    errors = errors_of(payload, shared_cmdline())  # the cmdline comes later in the same batch
    assert f"push0.json.0:$.type: {payload['type']!r} is refused on a dhcpsrvr router" in "\n".join(errors), errors


def test_a_native_document_cannot_give_a_dhcpsrvr_nat_rules():
    state = merged(*[d.data for d in p.base_network()], p.static_nat("198.51.100.20", "192.0.2.11"))
    document = state_doc.to_document(state) | {"cmdline": shared_cmdline(eth0ip="192.0.2.1")["cmd_line"]}
    errors = errors_of(document)
    assert "state:public_ips: a dhcpsrvr router is not the guests' gateway" in "\n".join(errors)
    assert "state:static_nats:" in "\n".join(errors)


# -- ipaliases -------------------------------------------------------------------------

def test_aliases_are_parsed_as_gson_sends_them_added_replaced_and_revoked_by_address():
    state = merged(shared_cmdline(), aliases(alias(), alias("10.3.0.2", "255.255.0.0", alias_count=2)))
    assert [(str(a.ip), a.prefix) for a in state.ip_aliases] == [(ALIAS_IP, 24), ("10.3.0.2", 16)]
    # DeleteIpAliasCommand: the revoked alias (its netmask may be absent) with the active ones.
    state = merged(aliases(alias("10.3.0.2", None, revoke=True), alias()), state=state)
    assert [(str(a.ip), a.prefix) for a in state.ip_aliases] == [(ALIAS_IP, 24)]
    state = merged(aliases(alias(netmask="255.255.255.128")), state=state)
    assert [(str(a.ip), a.prefix) for a in state.ip_aliases] == [(ALIAS_IP, 25)]
    assert merged(aliases(alias("10.9.0.2", revoke=True)), state=state).ip_aliases == state.ip_aliases


@pytest.mark.parametrize("entry, expected", [
    (alias("10.2.0.300"), "$.aliases[0].ip_address: '10.2.0.300' is not an IPv4 address"),
    (alias(netmask="255.0.255.0"), "$.aliases[0].netmask:"),
    (alias(netmask=None), "$.aliases[0].netmask:"),
    (alias(netmask="255.255.255.255"), "$.aliases[0].netmask: /32 leaves no address"),
    (alias("10.2.0.0"), "$.aliases[0].ip_address: 10.2.0.0 is the network or broadcast address"),
    (alias(revoke="maybe"), "$.aliases[0].revoke:"),
    (alias(count="one"), "$.aliases[0].count:"),
])
def test_bad_alias_fields_are_refused_with_their_path(entry, expected):
    errors = errors_of(shared_cmdline(), aliases(entry))
    assert any(e.startswith("push1.json.1:" + expected) for e in errors), errors


@pytest.mark.parametrize("payloads, expected", [
    ((aliases(alias("192.0.2.200")),), "192.0.2.0/24 is inside or overlaps the guest network on eth0"),
    ((aliases(alias(), alias("10.2.0.3")),), "10.2.0.0/24 is inside or overlaps the subnet of alias 10.2.0.2"),
    ((aliases(alias("169.254.7.1", "255.255.255.0")),),
     "169.254.7.0/24 is inside or overlaps the control network on eth1"),
    ((dhcpconfig(gateway=ALIAS_IP), aliases()), "10.2.0.2 is a guest gateway"),
    ((aliases(alias("10.2.0.2", "255.255.255.0"), alias("10.2.0.2", "255.255.255.0")),), "listed twice"),
])
def test_an_alias_must_be_a_subnet_of_its_own_and_no_gateway(payloads, expected):
    errors = errors_of(shared_cmdline(), *payloads)
    assert any(expected in e for e in errors), errors


def test_an_isolated_router_takes_no_aliases():
    errors = errors_of(*[d.data for d in p.base_network()], aliases())
    assert errors == ["push2.json.2:$.aliases[0]: IP aliases serve the subnets of a shared network: only a "
                      "dhcpsrvr router takes them (this one is 'router')"]


def test_vms_and_their_data_may_live_in_an_alias_subnet_and_nowhere_else():
    state = merged(shared_cmdline(), aliases(), dhcp_entry("02:00:00:00:00:12", "10.2.0.12", "db-01", ALIAS_GATEWAY),
                   {"type": "vmdata", "vm_ip_address": "10.2.0.12",
                    "vm_metadata": [["metadata", "instance-id", "i-1"]]})
    assert [str(h.ip) for h in state.dhcp_hosts] == ["10.2.0.12"]
    assert errors_of(dhcp_entry("02:00:00:00:00:13", "10.3.0.12", "x", "10.3.0.1"), state=state) == [
        "push0.json.0:$: 10.3.0.12 is in no guest network of this router"]
    assert errors_of(dhcp_entry("02:00:00:00:00:13", GATEWAY, "x", GATEWAY), state=state) == [
        "push0.json.0:$: 192.0.2.254 is the guests' gateway of its subnet"]
    assert errors_of(dhcp_entry("02:00:00:00:00:13", ALIAS_IP, "x", ALIAS_GATEWAY), state=state) == [
        "push0.json.0:$: 10.2.0.2 is the router's own guest address"]


def test_an_alias_subnets_gateway_comes_from_dhcpconfig_else_from_its_vms_entries():
    base = merged(shared_cmdline(), aliases(), dhcp_entry("02:00:00:00:00:12", "10.2.0.12", "db-01", "10.2.0.254"))
    assert [str(s.gateway) for s in base.guest_subnets()] == [GATEWAY, "10.2.0.254"]
    with_config = merged(dhcpconfig(), state=base)
    assert [str(s.gateway) for s in with_config.guest_subnets()] == [GATEWAY, ALIAS_GATEWAY]
    alone = merged(shared_cmdline(), aliases())
    assert [s.gateway for s in alone.guest_subnets()][1] is None  # no router option rather than the VR


def test_a_guestnetwork_push_cannot_make_the_dhcpsrvr_the_gateway():
    network = {"type": "guestnetwork", "add": True, "device": "eth0", "router_guest_ip": ROUTER_IP,
               "router_guest_netmask": "255.255.255.0", "cidr": "24", "dns": ROUTER_IP}
    errors = errors_of(shared_cmdline(), network)
    assert errors == ["push1.json.1:$: the guests' gateway 192.0.2.2 is the router's own address: a dhcpsrvr "
                      "router is not the guests' gateway (router_guest_gateway names the network's own router)"]


def test_aliases_persist_round_trip_and_match_the_schema():
    state = merged(shared_cmdline(), aliases(alias(), alias("10.3.0.2", "255.255.0.0")), dhcpconfig())
    document = state_doc.to_document(state)
    assert document["ip_aliases"] == [{"ip": ALIAS_IP, "prefix": 24}, {"ip": "10.3.0.2", "prefix": 16}]
    jsonschema.validate(document, SCHEMA)
    assert state_doc.loads(state_doc.dumps(state)) == state
    assert state_doc.load_trusted(state_doc.dumps(state)) == state
    assert "ip_aliases" not in state_doc.to_document(merged(shared_cmdline()))
    errors = errors_of(document | {"ip_aliases": [{"ip": ALIAS_IP, "prefix": 33}]})
    assert errors == ["push0.json.0:$.ip_aliases[0].prefix: 33 is outside 0..30"], errors


def test_ssh_on_the_guest_nic_only_when_the_cmdline_says_sshonguest():
    ssh = "-A vr-INPUT -i eth0 -p tcp -m tcp --dport 3922 -j ACCEPT"
    assert ssh in netfilter.render(merged(shared_cmdline(sshonguest="true")))["filter"].chains["vr-INPUT"]
    assert ssh not in netfilter.render(merged(shared_cmdline()))["filter"].chains["vr-INPUT"]


# -- rendering (golden) ------------------------------------------------------------------

def render_case(data: dict) -> dict:
    state = merge_documents(RouterState(), [Document(name, payload) for name, payload in data["pushes"]])
    paths = Paths(Path("/"))
    links = addresses.render(state)
    rendered = {"iptables": netfilter.render_restore(netfilter.render(state)).splitlines(),
                "sysctl": sysctl.file_content(sysctl.render(state)).splitlines(),
                "addresses": {device: list(map(str, interfaces)) for device, interfaces in links.addresses.items()},
                "default route": " ".join(map(str, links.default_route or ())),
                "metadata server.json": json.loads(metadata.config_text(state, paths))["listen"]}
    for path, text in dnsmasq.render_files(state, paths).items():
        rendered[path.name] = text.splitlines()
    return rendered


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path):
    golden.check(case, render_case)


def test_golden_cases_exist():
    assert {c.stem for c in CASES} >= {"dhcpsrvr_cmdline_only", "dhcpsrvr_alias_with_dhcpconfig",
                                       "dhcpsrvr_alias_gateway_from_entries_external_dns"}
