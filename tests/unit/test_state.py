"""The persisted state document: round trip, schema, native format as a push."""

from __future__ import annotations

import json

import jsonschema
import pytest

from tests.unit import pushes as p
from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.model import RouterState
from vragent.pipeline.intake import Document, merge_documents

SCHEMA = json.loads(state_doc.SCHEMA_PATH.read_text())


def full_state() -> RouterState:
    return merge_documents(RouterState(), p.base_network() + [
        p.doc("firewall_rules.json.1", p.firewall(
            p.ingress(901, "198.51.100.20", ports=(2222, 2222), cidrs=("203.0.113.10/32",)),
            p.ingress(905, "198.51.100.21", protocol="icmp", icmp=(8, 0)),
            p.egress(902, protocol="all", default_allow=False),
            p.egress(903, ports=(80, 80), dests=("203.0.113.0/24",)))),
        p.doc("forwarding_rules.json.1", p.forwards(p.forward("198.51.100.20", "2222:2222", "192.0.2.11", "22:22"))),
        p.doc("staticnat_rules.json.1", p.static_nat("198.51.100.21", "192.0.2.12")),
    ])


def test_document_round_trips_exactly():
    state = full_state()
    assert state_doc.loads(state_doc.dumps(state)) == state


def test_document_matches_the_published_schema():
    jsonschema.validate(state_doc.to_document(full_state()), SCHEMA)
    jsonschema.validate(state_doc.to_document(RouterState()), SCHEMA)


def test_native_document_replaces_the_whole_state():
    old = full_state()
    replacement = state_doc.to_document(old)
    replacement["port_forwards"] = []
    replacement["static_nats"] = []
    new = merge_documents(old, [Document("state.json", replacement)])
    assert new.port_forwards == () and new.static_nats == () and new.firewall_rules == old.firewall_rules


def test_native_document_errors_have_paths():
    doc = state_doc.to_document(full_state())
    doc["port_forwards"][0]["internal_ip"] = "not-an-ip"
    doc["sysctl"] = {"kernel.panic": "10"}
    with pytest.raises(InvalidInput) as caught:
        merge_documents(RouterState(), [Document("mine.json", doc)])
    paths = [e.path for e in caught.value.errors]
    assert "mine.json:$.port_forwards[0].internal_ip" in paths
    assert "mine.json:$.sysctl.kernel.panic" in paths


def test_sysctl_overrides_reach_the_rendered_settings():
    from vragent.subsystems.network import sysctl

    doc = state_doc.to_document(full_state())
    doc["sysctl"] = {"net.netfilter.nf_conntrack_max": "500000"}
    state = merge_documents(RouterState(), [Document("mine.json", doc)])
    assert sysctl.render(state)["net.netfilter.nf_conntrack_max"] == "500000"


def test_trusted_loader_reads_what_dumps_writes():
    state = full_state()
    assert state_doc.load_trusted(state_doc.dumps(state)) == state
    assert state_doc.load_trusted(state_doc.dumps(state, pretty=True)) == state
