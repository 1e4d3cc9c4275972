"""Which NICs a push configures (vragent/subsystems/network/nics.py), the bounded wait for hot-plugged
ones (vragent/shell/hotplug.py), and that every NIC holding an address is brought up."""

from __future__ import annotations

from tests.unit import pushes as p
from vragent.shell import hotplug
from vragent.engine import render
from vragent.paths import Paths
from vragent.pipeline.intake import load_push, merge_documents
from vragent.model import RouterState
from vragent.subsystems.network.nics import WantedNics, wanted


def docs(*payloads: dict):
    return [p.doc(f"push.{n}", payload) for n, payload in enumerate(payloads)]


def test_the_nics_a_push_adds_addresses_to_and_never_one_it_removes():
    vpc_ip = {"public_ip": "198.51.100.10", "add": True, "nic_dev_id": 1, "vif_mac_address": "02:00:00:00:01:01"}
    by_mac = {"public_ip": "198.51.100.20", "add": True, "vif_mac_address": "02:00:00:00:01:0A"}
    released = {"public_ip": "198.51.100.30", "add": False, "nic_dev_id": 5}
    documents = docs({"type": "ips", "ip_address": [vpc_ip, by_mac, released, "junk"]},
                     {"type": "guestnetwork", "add": True, "device": "eth2"},
                     {"type": "guestnetwork", "add": False, "device": "eth3"},  # removed before its unplug
                     {"type": "networkacl", "device": "eth6"},  # checked against the tiers, not the NICs
                     {"type": "guestnetwork", "device": "wlan0"})
    assert wanted(documents) == WantedNics(frozenset({"eth1", "eth2"}), frozenset({"02:00:00:00:01:0a"}))


def test_a_malformed_push_names_no_nic_and_leaves_the_errors_to_validation():
    (document,) = load_push("ip_associations.json.x", "{not json")
    assert not wanted([document])
    assert not wanted(docs({"type": "ips", "ip_address": {"nic_dev_id": 1}}, {"type": "guestnetwork"}))


def test_missing_nics_are_those_neither_named_nor_matched_by_mac():
    nics = WantedNics(frozenset({"eth1", "eth2"}), frozenset({"02:00:00:00:01:0a"}))
    assert nics.missing({"eth0": "x", "eth1": "02:00:00:00:01:0A"}) == WantedNics(frozenset({"eth2"}))
    assert str(nics) == "eth1, eth2, MAC 02:00:00:00:01:0a"


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_the_wait_ends_when_the_nic_appears():
    clock = FakeClock()
    appears_at = 1.0
    result = hotplug.wait_for(WantedNics(frozenset({"eth1"})),
                              lambda: {"eth0": "a", "eth1": "b"} if clock.now >= appears_at else {"eth0": "a"},
                              {"eth0": "a"}, timeout=10, sleep=clock.sleep, clock=clock)
    links, missing, waited = result
    assert "eth1" in links and not missing and appears_at <= waited < appears_at + 0.2


def test_the_wait_is_bounded_and_says_what_is_still_missing():
    clock = FakeClock()
    _, missing, waited = hotplug.wait_for(WantedNics(frozenset({"eth4"})), lambda: {"eth0": "a"}, {"eth0": "a"},
                                          timeout=3, sleep=clock.sleep, clock=clock)
    assert missing == WantedNics(frozenset({"eth4"})) and 3 <= waited < 3.2


def test_nothing_missing_means_no_wait_at_all():
    def never() -> dict:
        raise AssertionError("read again")
    assert hotplug.wait_for(WantedNics(frozenset({"eth0"})), never, {"eth0": "a"})[1:] == (WantedNics(), 0.0)


def test_the_wait_bound_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("VRAGENT_NIC_WAIT", "2.5")
    assert hotplug.wait_seconds() == 2.5
    monkeypatch.setenv("VRAGENT_NIC_WAIT", "soon")
    assert hotplug.wait_seconds() == hotplug.DEFAULT_WAIT_SECONDS


def test_every_nic_holding_an_address_is_brought_up(tmp_path):
    state = merge_documents(RouterState(), p.base_network())
    links = render(state, Paths(tmp_path)).links
    assert links.admin_up == {dev: True for dev, addresses in links.addresses.items() if addresses}
    assert set(links.admin_up) == {"eth0", "eth1", "eth2"}
