"""vmdata, vmpassword and monitorservice: parse, merge, validate, persist, render (pure)."""

from __future__ import annotations

import json
from dataclasses import replace
from ipaddress import IPv4Address
from pathlib import Path

import jsonschema
import pytest

from tests.unit import golden
from tests.unit import pushes as p
from tests.unit.test_state import SCHEMA
from vragent import metadata_server
from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.subsystems.guestdata import render as metadata
from vragent.subsystems.monitoring import render as monitoring
from vragent.pipeline import netfilter
from vragent.pipeline.intake import Document, merge_documents
from vragent.pipeline.intake import fingerprint
from vragent.shell import commit

GOLDEN = Path(__file__).parent / "golden_metadata"
CASES = sorted(GOLDEN.glob("*.json"))
USERDATA = "I2Nsb3VkLWNvbmZpZwpwYWNrYWdlczogW2h0b3BdCg=="  # "#cloud-config\npackages: [htop]\n"


def vmdata(ip: str = "192.0.2.11", *entries: list) -> dict:
    entries = entries or (["userdata", "user-data", USERDATA], ["metadata", "local-hostname", "web-01"],
                          ["metadata", "instance-id", "i-2-11-VM"])
    return {"type": "vmdata", "vm_ip_address": ip, "vm_metadata": [list(e) for e in entries]}


def vmpassword(ip: str = "192.0.2.11", password: str = "Xk3r9-pW") -> dict:
    return {"type": "vmpassword", "ip_address": ip, "password": password}


def monitor_service(**overrides) -> dict:
    payload = {"type": "monitorservice",
               "config": "[ssh]:processname=sshd:servicename=ssh:pidfile=/var/run/sshd.pid:,"
                         "[dnsmasq]:processname=dnsmasq:servicename=dnsmasq:pidfile=/run/vragent/dnsmasq.pid:,",
               "disable_monitoring": "false", "health_checks_enabled": True,
               "health_checks_basic_run_interval": 3, "health_checks_advanced_run_interval": 10,
               "excluded_health_checks": "iptables_check, dhcp_check", "health_checks_config": {"maxCpuUsage": "90"},
               "delete_from_processed_cache": True}
    payload.update(overrides)
    return payload


def merged(*payloads: dict, state: RouterState | None = None) -> RouterState:
    documents = p.base_network() if state is None else []
    documents += [p.doc(f"push{i}.json", payload) for i, payload in enumerate(payloads)]
    return merge_documents(state or RouterState(), documents)


def errors_of(*payloads: dict) -> list[str]:
    with pytest.raises(InvalidInput) as caught:
        merged(*payloads)
    return [f"{e.path}: {e.message}" for e in caught.value.errors]


# -- vmdata -------------------------------------------------------------------------------

def test_vmdata_holds_decoded_userdata_and_metadata_in_pushed_order():
    vm = merged(vmdata()).vm_data[0]
    assert vm.ip == IPv4Address("192.0.2.11")
    assert vm.userdata == b"#cloud-config\npackages: [htop]\n"
    assert vm.metadata == (("local-hostname", "web-01"), ("instance-id", "i-2-11-VM"))


def test_a_vmdata_push_replaces_that_vms_data_only():
    first = merged(vmdata(), vmdata("192.0.2.12", ["metadata", "local-hostname", "db-01"]))
    second = merged(vmdata("192.0.2.11", ["metadata", "vm-id", "42"]), state=first)
    assert [(str(vm.ip), vm.metadata, vm.userdata) for vm in second.vm_data] == [
        ("192.0.2.11", (("vm-id", "42"),), None), ("192.0.2.12", (("local-hostname", "db-01"),), None)]


def test_vmdata_quirks_empty_removes_a_key_null_is_an_empty_value_and_unpadded_base64_decodes():
    vm = merged(vmdata("192.0.2.11", ["userdata", "user-data", "aGk"], ["metadata", "public-keys", ""],
                       ["metadata", "cloud-identifier", None], ["metadata", "Local-Hostname", "a"],
                       ["metadata", "local-hostname", "b"], ["otherfolder", "x", "y"], ["metadata", "", "z"])).vm_data[0]
    assert vm.userdata == b"hi"
    assert vm.metadata == (("cloud-identifier", ""), ("local-hostname", "b"))


def test_a_vm_with_nothing_left_is_dropped():
    state = merged(vmdata())
    assert merged(vmdata("192.0.2.11", ["userdata", "user-data", None]), state=state).vm_data == ()


def test_bad_vmdata_is_refused_with_every_errors_path():
    errors = errors_of(vmdata("192.0.2.11", ["userdata", "user-data", "not*base64"], ["metadata", "a/b", "x"],
                              ["metadata"], ["metadata", "k", 5]),
                       vmdata("10.9.9.9"),
                       {"type": "vmdata", "vm_ip_address": "192.0.2.13", "vm_metadata": {"a": 1}},
                       vmdata("192.0.2.1"))
    assert errors == [
        "push0.json:$.vm_metadata[0][2]: user-data is not valid base64",
        "push0.json:$.vm_metadata[1][1]: 'a/b' is not a metadata key (1-255 printable characters, no '/' or spaces)",
        "push0.json:$.vm_metadata[2]: expected a [folder, file, content] list, got a list of 1",
        "push0.json:$.vm_metadata[3][2]: expected a string or null, got a number",
        "push2.json:$.vm_metadata: expected a list, got an object",
    ]
    # Semantic checks run once the push parses: a VM outside the guest networks, the router itself.
    assert errors_of(vmdata("10.9.9.9"), vmdata("192.0.2.1")) == [
        "push0.json:$.vm_ip_address: 10.9.9.9 is in no guest network of this router",
        "push1.json:$.vm_ip_address: 192.0.2.1 is the router's own guest address"]


def test_data_of_a_network_that_is_gone_is_kept_but_not_served_and_blocks_nothing():
    state = merged(vmdata())
    moved = state.with_cmdline({**state.config, "eth0ip": "10.1.1.1", "guestgw": "10.1.1.1"})
    assert merged(p.firewall(), state=moved).vm_data == state.vm_data
    assert metadata.served_vms(moved) == ()


# -- vmpassword ---------------------------------------------------------------------------

def test_a_password_is_offered_but_never_persisted():
    state = merged(vmpassword())
    assert [(str(o.ip), o.password) for o in state.password_offers] == [("192.0.2.11", "Xk3r9-pW")]
    text = state_doc.dumps(state)
    assert "Xk3r9-pW" not in text and "Xk3r9-pW" not in repr(state)
    assert state_doc.load_trusted(text).password_offers == ()


def test_a_password_push_is_never_memoised_as_a_no_op():
    assert fingerprint([Document("a", vmdata(), json.dumps(vmdata()))]) is not None
    assert fingerprint([Document("a", vmpassword(), json.dumps(vmpassword()))]) is None


def test_bad_passwords_are_refused_without_repeating_them():
    errors = errors_of(vmpassword(password="two\nlines"), vmpassword("192.0.2.12", "bad_request"),
                       vmpassword("192.0.2.13", ""), {"type": "vmpassword", "ip_address": "192.0.2.14"},
                       vmpassword("10.0.0.5"))
    assert errors == [
        "push0.json:$.password: must be at most 512 printable characters on one line (not shown)",
        "push1.json:$.password: may not be 'bad_request': guests read that body as a protocol answer",
        "push2.json:$.password: is empty",
        "push3.json:$.password: is required",
    ]
    assert errors_of(vmpassword("10.0.0.5")) == [
        "push0.json:$.ip_address: 10.0.0.5 is in no guest network of this router"]


def test_saved_password_withdraws_a_pending_password_and_is_a_no_op_without_one(tmp_path):
    from vragent.shell import passwordfile
    from vragent.paths import Paths
    from vragent.subsystems.guestdata.render import MetadataPaths, password_steps

    paths = Paths.from_root(tmp_path)
    pending = MetadataPaths.of(paths).passwords
    withdrawn = merged(vmpassword("192.0.2.11", "saved_password"))
    assert password_steps(withdrawn, paths, passwordfile.read(pending)) == []  # nothing pending: nothing to do
    passwordfile.update(pending, {"192.0.2.11": "Xk3r9-pW", "192.0.2.12": "other"})
    (step,) = password_steps(withdrawn, paths, passwordfile.read(pending))
    commit.commit(step)
    assert passwordfile.read(pending) == {"192.0.2.12": "other"}
    commit.rollback(step)
    assert passwordfile.read(pending)["192.0.2.11"] == "Xk3r9-pW"


def test_the_handover_step_never_shows_the_password(tmp_path):
    steps = metadata.password_steps(merged(vmpassword()), Paths(tmp_path), {})
    assert len(steps) == 1
    assert "Xk3r9-pW" not in steps[0].summary() + steps[0].diff() + repr(steps[0])
    commit.commit(steps[0])
    passwords = tmp_path / "var/lib/vragent/vm-passwords.json"
    assert json.loads(passwords.read_text()) == {"192.0.2.11": "Xk3r9-pW"}
    assert passwords.stat().st_mode & 0o777 == 0o600
    commit.rollback(steps[0])
    assert json.loads(passwords.read_text()) == {}


# -- monitorservice -----------------------------------------------------------------------

def test_monitorservice_is_parsed_and_replaced_whole():
    state = merged(monitor_service())
    assert [s.name for s in state.monitoring.services] == ["ssh", "dnsmasq"]
    assert state.monitoring.services[0].options == (("processname", "sshd"), ("servicename", "ssh"),
                                                    ("pidfile", "/var/run/sshd.pid"))
    assert state.monitoring.excluded_checks == ("iptables_check", "dhcp_check")
    assert (state.monitoring.basic_interval, state.monitoring.advanced_interval) == (3, 10)
    again = merged(monitor_service(config="", health_checks_enabled="false"), state=state)
    assert again.monitoring.services == () and not again.monitoring.health_checks_enabled


def test_bad_monitorservice_is_refused_with_paths():
    errors = errors_of(monitor_service(config="ssh:processname=sshd:,[x]:novalue:",
                                       health_checks_basic_run_interval="often", health_checks_config=[1],
                                       excluded_health_checks=["ok", "bad name"]))
    assert errors == [
        "push0.json:$.config[0]: 'ssh:processname=sshd:' does not start with a [service] name",
        "push0.json:$.config[1]: 'novalue' in [x] is not a key=value setting",
        "push0.json:$.health_checks_basic_run_interval: expected an integer, got 'often'",
        "push0.json:$.excluded_health_checks[1]: 'bad name' is not a health check name",
        "push0.json:$.health_checks_config: expected an object, got a list",
    ]


# -- the native document ------------------------------------------------------------------

def test_the_native_document_round_trips_and_matches_the_schema():
    state = replace(merged(vmdata(), vmdata("192.0.2.12", ["metadata", "Public-Keys", "k1\nk2"]),
                           monitor_service()), password_offers=())
    document = state_doc.to_document(state)
    jsonschema.validate(document, SCHEMA)
    assert state_doc.loads(json.dumps(document)) == state
    assert state_doc.load_trusted(state_doc.dumps(state)) == state
    # `vragent show` -> `vragent apply`: the same state again.
    assert merge_documents(state, [Document("show.json", document)]) == state


def test_native_vm_data_errors_have_paths():
    document = state_doc.to_document(merged(vmdata()))
    document["vm_data"][0]["userdata"] = "%%%"
    document["vm_data"].append({"ip": "192.0.2.12", "metadata": {"a": "1", "A": "2"}})
    with pytest.raises(InvalidInput) as caught:
        merge_documents(RouterState(), [Document("mine.json", document)])
    assert [f"{e.path}: {e.message}" for e in caught.value.errors] == [
        "mine.json:$.vm_data[0].userdata: is not valid base64",
        "mine.json:$.vm_data[1].metadata.A: repeats a key (keys are matched case-insensitively)"]


# -- what the data server answers ---------------------------------------------------------

def test_the_server_answers_by_source_address_path_and_case():
    vms = metadata_server.parse_vms(metadata.data_text(merged(vmdata(), vmdata("192.0.2.12", ["metadata", "vm-id", "7"]))))
    ask = lambda path, source="192.0.2.11": metadata_server.resolve(vms, source, path)  # noqa: E731
    assert ask("/latest/user-data") == (200, b"#cloud-config\npackages: [htop]\n")
    assert ask("/latest/USER-DATA/?x=1") == ask("/latest/user-data")
    assert ask("/latest/meta-data") == ask("/latest/meta-data/") == (200, b"local-hostname\ninstance-id\n")
    assert ask("/latest/meta-data/Instance-ID/") == ask("/latest/instance-id") == (200, b"i-2-11-VM")
    assert ask("/latest/meta-data/vm-id")[0] == 404  # another VM's key
    assert ask("/latest/vm-id", "192.0.2.12") == (200, b"7")
    assert ask("/latest/user-data", "192.0.2.12")[0] == 404
    assert ask("/latest/user-data", "192.0.2.99")[0] == 404
    assert [ask(path)[0] for path in ("/", "/latest", "/latest/", "/latest/meta-data/../user-data",
                                      "/other/user-data")] == [404] * 5


# -- golden files: the rendered files and INPUT rules -------------------------------------

def render_case(data: dict) -> dict:
    state = merge_documents(RouterState(), [Document(name, payload) for name, payload in data["pushes"]])
    paths = Paths(Path("/"))
    rendered = {"input": [line for line in netfilter.render_restore(netfilter.render(state)).splitlines()
                          if line.startswith("-A vr-INPUT")]}
    desired = metadata.daemon(state, paths)
    rendered |= {str(path): content.splitlines() for path, (content, _) in desired.files.items() if content}
    rendered |= {str(path): content.splitlines() for path, (content, _) in monitoring.files(state, paths).items()}
    return rendered


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden(case: Path):
    golden.check(case, render_case)


def test_there_are_golden_cases():
    assert len(CASES) >= 2
