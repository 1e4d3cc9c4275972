"""A batch of per-VM pushes (dhcpentry, vmdata, vmpassword) is merged in one pass
(`merge_all`), which must make exactly what merging its documents one by one makes:
same hosts, same order, same winner for every MAC, IP and hostname."""

from __future__ import annotations

from dataclasses import replace
from functools import reduce
from ipaddress import IPv4Address

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.unit import pushes as p
from vragent.model import DhcpHost, PasswordOffer, RouterState, VmData
from vragent.subsystems.dhcp import dhcpentry
from vragent.pipeline.intake import merge_documents
from vragent.subsystems.guestdata import vmdata, vmpassword
from vragent.subsystems.dhcp.dhcpentry import DhcpChange
from vragent.subsystems.guestdata.vmdata import VmDataChange
from vragent.subsystems.guestdata.vmpassword import PasswordChange

# Few distinct values, so that MACs, IPs and hostnames collide often.
macs = st.sampled_from([f"02:00:00:00:00:{n:02x}" for n in range(6)])
ips = st.sampled_from([IPv4Address(f"192.0.2.{n}") for n in range(10, 16)])
names = st.sampled_from(["vm-a", "VM-A", "vm-b", "vm-c", "vm-d"])
hosts = st.builds(DhcpHost, mac=macs, ip=ips, hostname=names, default_entry=st.booleans())
dhcp_changes = st.one_of(
    hosts.map(lambda host: DhcpChange(host, host.mac, "push:$")),
    macs.map(lambda mac: DhcpChange(None, mac, "push:$")))


def one_by_one(module, state: RouterState, changes: list) -> RouterState:
    return reduce(module.merge, changes, state)


@settings(max_examples=300, deadline=None)
@given(st.lists(hosts, max_size=6), st.lists(dhcp_changes, min_size=1, max_size=12))
def test_dhcp_entries_merged_together_are_what_one_by_one_makes(before, changes):
    # The state may even hold what a merge would never leave (duplicates, any order: a native
    # document). intake merges one change with merge() itself, so there is always one.
    state = RouterState(dhcp_hosts=tuple(before))
    assert dhcpentry.merge_all(state, changes) == one_by_one(dhcpentry, state, changes)


vm_data = st.builds(VmData, ip=ips, userdata=st.one_of(st.none(), st.just(b"x")),
                    metadata=st.sampled_from([(), (("instance-id", "i-1"),)]))


@settings(max_examples=200, deadline=None)
@given(st.lists(vm_data, max_size=6), st.lists(vm_data, min_size=1, max_size=12))
def test_vm_data_merged_together_is_what_one_by_one_makes(before, pushed):
    state = RouterState(vm_data=tuple(vm for vm in before if not vm.empty))
    changes = [VmDataChange(vm, "push:$") for vm in pushed]
    assert vmdata.merge_all(state, changes) == one_by_one(vmdata, state, changes)


offers = st.builds(PasswordOffer, ip=ips, password=st.sampled_from([None, "a", "b"]))


@settings(max_examples=200, deadline=None)
@given(st.lists(offers, max_size=6), st.lists(offers, min_size=1, max_size=12))
def test_passwords_merged_together_are_what_one_by_one_makes(before, pushed):
    state = RouterState(password_offers=tuple(before))
    changes = [PasswordChange(offer, "push:$") for offer in pushed]
    assert vmpassword.merge_all(state, changes) == one_by_one(vmpassword, state, changes)


def entry(mac: str, ip: str, name: str, remove: bool = False) -> dict:
    return {"type": "dhcpentry", "host_name": name, "mac_address": mac, "ipv4_address": ip,
            "default_entry": True, "remove": remove}


def test_a_batch_mixing_types_merges_each_run_in_push_order():
    """Runs of one type are merged together, but a later run still sees an earlier one, and
    a removal after an add wins as it did one by one."""
    base = merge_documents(RouterState(), [p.doc("cmd_line.json", p.cmdline())])
    pushed = [entry("02:00:00:00:00:01", "192.0.2.11", "one"), entry("02:00:00:00:00:02", "192.0.2.12", "two"),
              {"type": "vmdata", "vm_ip_address": "192.0.2.11", "vm_metadata": [["metadata", "instance-id", "i-1"]]},
              entry("02:00:00:00:00:01", "192.0.2.11", "one", remove=True),
              entry("02:00:00:00:00:03", "192.0.2.12", "three")]
    together = merge_documents(base, [p.doc(f"f{n}", payload) for n, payload in enumerate(pushed)])
    apart = reduce(lambda state, pair: merge_documents(state, [p.doc(f"f{pair[0]}", pair[1])]),
                   enumerate(pushed), base)
    assert together == apart
    assert [(h.hostname, str(h.ip)) for h in together.dhcp_hosts] == [("three", "192.0.2.12")]
    assert [str(vm.ip) for vm in together.vm_data] == ["192.0.2.11"]


def test_every_error_of_a_batch_is_reported_with_its_document():
    import pytest

    from vragent.errors import InvalidInput

    base = merge_documents(RouterState(), [p.doc("cmd_line.json", p.cmdline())])
    pushed = [entry("02:00:00:00:00:01", "192.0.2.11", "one"), entry("zz", "192.0.2.12", "two"),
              entry("02:00:00:00:00:03", "192.0.2.13", "three"), entry("02:00:00:00:00:04", "192.0.2.14", "-bad-")]
    with pytest.raises(InvalidInput) as raised:
        merge_documents(base, [p.doc(f"f{n}", payload) for n, payload in enumerate(pushed)])
    assert sorted(e.path for e in raised.value.errors) == ["f1:$.mac_address", "f3:$.host_name"]
    # Once every document parses, the merged batch is checked, naming the document again.
    pushed[1], pushed[3] = (entry("02:00:00:00:00:02", "203.0.113.9", "two"),
                            entry("02:00:00:00:00:04", "192.0.2.1", "four"))
    with pytest.raises(InvalidInput) as raised:
        merge_documents(base, [p.doc(f"f{n}", payload) for n, payload in enumerate(pushed)])
    assert sorted(e.path for e in raised.value.errors) == ["f1:$", "f3:$"]


def test_replace_keeps_the_state_frozen():
    # merge_all returns a new state and leaves the one it was given alone.
    state = RouterState(dhcp_hosts=(DhcpHost("02:00:00:00:00:01", IPv4Address("192.0.2.11"), "one"),))
    copy = replace(state)
    dhcpentry.merge_all(state, [DhcpChange(None, "02:00:00:00:00:01", "push:$")])
    assert state == copy
