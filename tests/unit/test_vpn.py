"""Remote-access VPN: the wire forms, their merge and validation, the state, the rendered
daemon files and firewall openings, secrets masking, and finding a user's pppd session."""

from __future__ import annotations

import json

import jsonschema
import pytest

from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.lab import sample
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.redact import secrets_hidden
from vragent.subsystems.dhcp import render as dnsmasq
from vragent.pipeline import netfilter
from vragent.subsystems.vpn import render as vpn
from vragent.pipeline.intake import Document, merge_documents
from vragent.steps import sessions_of

SCHEMA = json.loads(state_doc.SCHEMA_PATH.read_text())
BASE = (sample.cmdline(), sample.ips(), sample.guestnetwork())


def merged(*payloads, state: RouterState | None = None) -> RouterState:
    return merge_documents(state or RouterState(), [Document(n, p) for n, p in sample.named(*payloads)])


def errors_of(*payloads, state: RouterState | None = None) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*payloads, state=state)
    return [f"{e.path.split(':', 1)[1]} {e.message}" for e in caught.value.errors]


def with_vpn(*users) -> RouterState:
    return merged(*BASE, sample.remote_access_vpn(), sample.vpn_users(*users))


def test_the_management_servers_payload_becomes_the_vpn():
    state = with_vpn(("alice", "al1ce-Pw9", True))
    vpn_ = state.remote_access_vpn
    assert (str(vpn_.public_ip), vpn_.ip_range, str(vpn_.local_ip), str(vpn_.local_cidr), vpn_.public_interface) == (
        "198.51.100.10", "10.1.2.2-10.1.2.8", "10.1.2.1", "192.0.2.0/24", "eth2")
    assert vpn_.preshared_key == sample.VPN_PSK and sample.VPN_PSK not in repr(vpn_)
    assert [u.name for u in state.vpn_users] == ["alice"] and "al1ce" not in repr(state.vpn_users)


def test_create_false_removes_the_vpn_and_another_ip_is_left_alone():
    state = with_vpn()
    assert merged(sample.remote_access_vpn(create=False, public_ip="198.51.100.20"), state=state) == state
    off = merged({"type": "remoteaccessvpn", "create": False, "vpn_server_ip": "198.51.100.10"}, state=state)
    assert off.remote_access_vpn is None


def test_users_are_added_replaced_and_removed_others_kept():
    state = with_vpn(("alice", "al1ce-Pw9", True), ("bob", "b0b-Pw7", True))
    state = merged(sample.vpn_users(("bob", "n3w-Pw", True), ("alice", "", False), ("carol", "c4rol-Pw", True)),
                   state=state)
    assert [(u.name, u.password) for u in state.vpn_users] == [("bob", "n3w-Pw"), ("carol", "c4rol-Pw")]
    # A list that does not name a user keeps it.
    assert merged(sample.vpn_users(("dave", "d4ve-Pw", True)), state=state).vpn_users[:2] == state.vpn_users


@pytest.mark.parametrize("payload, expected", [
    (sample.remote_access_vpn(public_ip="198.51.100.99"),
     "$.vpn_server_ip 198.51.100.99 is not a public IP of this router"),
    (sample.remote_access_vpn(ip_range="192.0.2.200-192.0.2.210"),
     "$.ip_range 192.0.2.200-192.0.2.210 overlaps the guest network 192.0.2.0/24 on eth0"),
    (sample.remote_access_vpn(ip_range="10.1.2.9-10.1.2.3"), "$.ip_range '10.1.2.9-10.1.2.3': the first address is above the last"),
    (sample.remote_access_vpn(ip_range="10.1.2.2"), "$.ip_range '10.1.2.2' is not a range of IPv4 addresses (first-last)"),
    (sample.remote_access_vpn(local_ip="10.1.2.4"),
     "$.local_ip 10.1.2.4 is inside ip_range 10.1.2.2-10.1.2.8 (it would be given to a client)"),
    (sample.remote_access_vpn(local_ip="198.51.100.50"),
     "$.local_ip 198.51.100.50 is in the public network 198.51.100.0/24 on eth2"),
    (sample.remote_access_vpn(psk="two\nlines"),
     "$.preshared_key must be printable ASCII without quotes or backslashes (not shown)"),
    (sample.remote_access_vpn(psk=""), "$.preshared_key is empty"),
    (sample.remote_access_vpn() | {"vpn_type": "ikev2"},
     "$.vpn_type 'ikev2' is not supported yet (only l2tp: L2TP/IPsec with a pre-shared key)"),
    (sample.vpn_users(("*", "pw-pw-pw", True)), "$.vpn_users[0].user '*' is not a VPN user name (letters, digits "
                                                "and @._-, starting with a letter or digit, at most 64)"),
    (sample.vpn_users(("eve", "pass word", True)),
     "$.vpn_users[0].password must be printable ASCII without spaces, quotes or backslashes (not shown)"),
    (sample.vpn_users(("eve", "a\\b", True)),
     "$.vpn_users[0].password must be printable ASCII without spaces, quotes or backslashes (not shown)"),
    (sample.vpn_users(("eve", None, True)), "$.vpn_users[0].password is required"),
])
def test_bad_input_is_named_by_its_path_and_never_repeats_a_secret(payload, expected):
    errors = errors_of(*BASE, payload)
    assert errors == [expected]


def test_a_vpn_on_a_static_nat_ip_is_refused():
    errors = errors_of(*BASE, sample.staticnat_rules(sample.staticnat_rule("198.51.100.20", "192.0.2.11")),
                       sample.remote_access_vpn(public_ip="198.51.100.20"))
    assert errors == ["$.vpn_server_ip 198.51.100.20 has static NAT: IKE and L2TP would go to the VM"]


def test_the_state_round_trips_matches_its_schema_and_masks_secrets_when_shown():
    state = with_vpn(("alice", "al1ce-Pw9", True))
    text = state_doc.dumps(state)
    assert state_doc.loads(text) == state and state_doc.load_trusted(text) == state
    jsonschema.validate(state_doc.to_document(state), SCHEMA)
    hidden = secrets_hidden(text)
    assert sample.VPN_PSK not in hidden and "al1ce-Pw9" not in hidden and '"alice"' in hidden
    # A router without a VPN keeps the document it always had.
    assert "remote_access_vpn" not in state_doc.to_document(merged(*BASE))


def test_a_native_document_is_validated_like_the_wire_form():
    doc = state_doc.to_document(with_vpn(("alice", "al1ce-Pw9", True)))
    doc["vpn_users"].append({"user": "bad name", "password": "x"})
    doc["remote_access_vpn"]["preshared_key"] = 'q"uote'
    with pytest.raises(InvalidInput) as caught:
        merge_documents(RouterState(), [Document("mine.json", doc)])
    paths = sorted(e.path for e in caught.value.errors)
    assert paths == ["mine.json:$.remote_access_vpn.preshared_key", "mine.json:$.vpn_users[1].user"]


def test_rendered_files_and_firewall_openings():
    state = with_vpn(("alice", "al1ce-Pw9", True))
    paths = Paths.from_root("/r")
    swanctl = vpn.swanctl_conf(state)
    assert "local_addrs = 198.51.100.10" in swanctl and "mode = transport" in swanctl
    assert "local_ts = dynamic[udp/1701]" in swanctl and f'secret = "{sample.VPN_PSK}"' in swanctl
    xl2tpd = vpn.xl2tpd_conf(state, paths)
    assert "listen-addr = 198.51.100.10" in xl2tpd and "ip range = 10.1.2.2-10.1.2.8" in xl2tpd
    assert "local ip = 10.1.2.1" in xl2tpd and "pppoptfile = /r/etc/vragent/ppp/options.xl2tpd" in xl2tpd
    assert "ms-dns 192.0.2.1" in vpn.ppp_options(state).splitlines()
    assert vpn.chap_secrets(state.vpn_users).splitlines()[2:] == ['"alice" * "al1ce-Pw9" *']
    assert "socket = unix:///r/run/vragent/charon.vici" in vpn.strongswan_conf(paths)
    tables = netfilter.render(state)
    assert tables["filter"].chains["vr-vpn"][-3] == ("-A vr-vpn -d 198.51.100.10/32 -i eth2 -p udp -m policy "
                                                    "--dir in --pol ipsec --proto esp -m udp --dport 1701 -j ACCEPT")
    assert "-A vr-fw-198.51.100.10 -p esp -j RETURN" in tables["mangle"].chains["vr-fw-198.51.100.10"]
    assert "-p esp" not in " ".join(tables["mangle"].chains["vr-fw-198.51.100.20"])
    conf = dnsmasq.render_files(state, paths)[dnsmasq.DnsmasqPaths.of(paths).conf]
    assert "interface=ppp*" in conf.splitlines() and "no-dhcp-interface=ppp*" in conf.splitlines()


def test_without_a_vpn_nothing_is_rendered_or_opened():
    state = merged(*BASE)
    rules = netfilter.render_restore(netfilter.render(state))
    assert "vr-vpn" not in rules and "ppp+" not in rules and "esp" not in rules
    daemons = [vpn.strongswan_daemon(state, Paths.from_root("/r")), vpn.xl2tpd_daemon(state, Paths.from_root("/r"))]
    assert not any(d.enabled for d in daemons)
    assert all(content is None for d in daemons for content, _ in d.files.values())


def test_secret_files_are_private_and_only_daemon_files_restart_them():
    state = with_vpn(("alice", "al1ce-Pw9", True))
    paths = Paths.from_root("/r")
    files = vpn.VpnPaths(paths)
    strongswan, xl2tpd = vpn.strongswan_daemon(state, paths), vpn.xl2tpd_daemon(state, paths)
    assert strongswan.files[files.swanctl_conf][1] == 0o600 and xl2tpd.files[files.chap_secrets][1] == 0o600
    assert files.chap_secrets not in xl2tpd.restart_files and xl2tpd.reload_action == "none"
    assert files.swanctl_conf not in strongswan.restart_files  # a new key or proposal: swanctl reloads it


DUMP = '''{
key(8) = "pppd4242"
data(52) = "PPPD_PID=4242;PEERNAME=alice;IFNAME=ppp0;DEVICE=/dev/pts/3\\00"
}
{
key(11) = "IFNAME=ppp0"
data(8) = "pppd4242"
}
{
key(8) = "pppd4343"
data(44) = "IFNAME=ppp1;PEERNAME=bob;PPPD_PID=4343\\00"
}
'''


def test_a_users_sessions_are_found_in_pppds_database():
    assert sessions_of(DUMP, ("bob",)) == [4343]
    assert sessions_of(DUMP, ("alice", "bob")) == [4242, 4343]
    assert sessions_of(DUMP, ("carol",)) == []


def test_sessions_are_ended_for_removed_users_and_changed_passwords_only():
    paths = Paths.from_root("/r")
    old = with_vpn(("alice", "al1ce-Pw9", True), ("bob", "b0b-Pw7", True), ("carol", "c4rol-Pw", True))
    new = merged(sample.vpn_users(("bob", "", False), ("carol", "n3w-Pw", True)), state=old)
    steps = vpn.session_steps(old, new, paths)
    assert [(s.kind, s.users) for s in steps] == [("vpn", ("bob", "carol"))]
    assert vpn.session_steps(new, new, paths) == []


def test_on_a_redundant_pair_only_the_primary_runs_the_vpn():
    from vragent.subsystems.vrrp import model as redundancy
    from vragent.subsystems.vrrp import render as vrrp_render
    from vragent.desired import Desired
    from vragent.subsystems.network import render as addresses

    cmdline = sample.cmdline(redundant=True)
    state = merged(cmdline, sample.ips(), sample.guestnetwork(redundant=True), sample.remote_access_vpn())
    paths = Paths.from_root("/r")
    desired = Desired(tables={}, sysctls={}, links=addresses.render(state), files={},
                      daemons=[vpn.strongswan_daemon(state, paths), vpn.xl2tpd_daemon(state, paths)])
    for role, standby in ((redundancy.Role.PRIMARY, False), (redundancy.Role.BACKUP, True),
                          (redundancy.Role.FAULT, True)):
        shaped = vrrp_render.shape(desired, state, role)
        assert [(d.service, d.standby) for d in shaped.daemons] == [("strongswan", standby), ("xl2tpd", standby)]
