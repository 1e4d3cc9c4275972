"""The table of concrete hostile pushes (issue 15's corpus findings): each is refused with
exit 2 and the JSON path of the culprit, no traceback, and the router's root left byte for
byte as it was. Run through `vragent apply` in-process against a scratch --root (the
refusal comes before anything touches the system), a few through the real CLI and shims.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.unit import hostile
from vragent import cli, shims
from vragent.lab import sample, sample_vpc
from vragent.paths import Paths

SCENARIOS = hostile.scenarios()


def _push(kind: str) -> dict:
    return copy.deepcopy(SCENARIOS[kind][1])


def _with(kind: str, path: tuple, value) -> dict:
    return hostile.replaced(_push(kind), path, value)


def _guest(domain=None, mac=None) -> dict:
    push = sample_vpc.guestnetwork(1)
    if domain is not None:
        push["domain_name"] = domain
    if mac is not None:
        push["mac_address"] = mac
    return push


def _cmdline(**values) -> dict:
    push = sample.cmdline()
    push["cmd_line"].update(values)
    return push


def _lb_with(line: str) -> dict:
    push = _push("loadbalancer")
    push["rules"][0]["configuration"].append(line)
    return push


INJECTION = "tier.example\ndhcp-script=/usr/local/bin/evil\n#"
# (case id, file text or bytes, a substring every error path must hold)
CASES = [
    ("domain_name dhcp-script", _guest(domain=INJECTION), "$.domain_name"),
    ("domain_name address=", _guest(domain="\naddress=/name/192.0.2.66\n#"), "$.domain_name"),
    ("domain_name NUL", _guest(domain="tier\x00.example"), "$.domain_name"),
    ("domain_name space", _guest(domain="tier example"), "$.domain_name"),
    ("domain_name semicolon", _guest(domain="tier;reboot"), "$.domain_name"),
    ("domain_name command", _guest(domain="$(reboot).example"), "$.domain_name"),
    ("domain_name backticks", _guest(domain="`reboot`.example"), "$.domain_name"),
    ("domain_name percent", _guest(domain="%s%n.example"), "$.domain_name"),
    ("domain_name template", _guest(domain="{{7*7}}.example"), "$.domain_name"),
    ("domain_name surrogate", json.dumps(_guest(domain="x")).replace('"x"', '"\\udcff"'), "$.domain_name"),
    ("guestnetwork mac newline", _guest(mac="02:00:00:00:00:01\nx"), "$.mac_address"),
    ("guestnetwork mac any string", _guest(mac="not a mac"), "$.mac_address"),
    ("cmdline domain metacharacters", _cmdline(domain="lab;$(id)`id`"), "$.cmd_line.domain"),
    ("cmdline domain quotes", _cmdline(domain='lab"internal'), "$.cmd_line.domain"),
    ("cmdline domain comma", _cmdline(domain="lab,internal"), "$.cmd_line.domain"),
    ("cmdline domain 1 MB", _cmdline(domain="a" * (1 << 20)), "$.cmd_line.domain"),
    ("cmdline domain newline", _cmdline(domain="lab\ndhcp-script=/x"), "$.cmd_line.domain"),
    ("cmdline name with a space", _cmdline(name="r-7-VM other-name"), "$.cmd_line.name"),
    ("cmdline name surrogate", json.dumps(_cmdline(name="x")).replace('"name": "x"', '"name": "\\udcff"'),
     "$.cmd_line.name"),
    ("cmdline domain surrogate", json.dumps(_cmdline(domain="x")).replace('"domain": "x"', '"domain": "\\udcff"'),
     "$.cmd_line.domain"),
    ("vm_data surrogate", json.dumps(_push("vmdata")).replace('"i-1"', '"\\udcff"'), "$.vm_metadata[3][2]"),
    ("haproxy line surrogate", json.dumps(_lb_with("\tbalance x")).replace("balance x", "balance \\udcff"),
     "$.rules[0].configuration"),
    ("haproxy program section", _lb_with("program evil"), "$.rules[0].configuration"),
    ("haproxy lua-load", _lb_with("\tlua-load /tmp/evil.lua"), "$.rules[0].configuration"),
    ("haproxy external-check", _lb_with("\texternal-check command /bin/sh"), "$.rules[0].configuration"),
    ("haproxy setenv", _lb_with("\tsetenv PATH /tmp"), "$.rules[0].configuration"),
    ("haproxy option external-check", _lb_with("\toption external-check"), "$.rules[0].configuration"),
    ("haproxy quoted value", _lb_with('\tbalance "roundrobin"'), "$.rules[0].configuration"),
    ("port range Infinity", json.dumps(_push("firewallrules")).replace("[22, 22]", "[Infinity, 22]"), ":$"),
    ("port range NaN", json.dumps(_push("firewallrules")).replace("[22, 22]", "[NaN, 22]"), ":$"),
    ("port range 1.5", _with("firewallrules", ("rules", 0, "src_port_range"), [1.5, 2222]), "src_port_range"),
    ("port range of one", _with("firewallrules", ("rules", 0, "src_port_range"), [22]), "src_port_range"),
    ("port range of three", _with("firewallrules", ("rules", 0, "src_port_range"), [1, 2, 3]), "src_port_range"),
    ("port range of strings", _with("firewallrules", ("rules", 0, "src_port_range"), ["1", "x"]),
     "src_port_range"),
    ("huge integer", json.dumps(_push("firewallrules")).replace("[22, 22]", "[" + "9" * 5000 + ", 22]"), ":$"),
    ("rule id x", _with("firewallrules", ("rules", 0, "id"), "x"), "$.rules[0].id"),
    ("rule id negative", _with("firewallrules", ("rules", 0, "id"), -4), "$.rules[0].id"),
    ("rule id float", _with("firewallrules", ("rules", 0, "id"), 1.5), "$.rules[0].id"),
    ("vif_mac_address zz:zz", _with("ips", ("ip_address", 0, "vif_mac_address"), "zz:zz"),
     "$.ip_address[0].vif_mac_address"),
    ("dhcpconfig entries not a list", _with("dhcpconfig", ("entries",), "10.0.0.1"), "$.entries"),
    ("dhcpconfig entries an object", _with("dhcpconfig", ("entries",), {"a": 1}), "$.entries"),
    ("dhcpentry host name newline", _with("dhcpentry", ("host_name",), "vm\naddress=/x/1.2.3.4"), "$.host_name"),
    ("dhcpentry mac", _with("dhcpentry", ("mac_address",), "zz:zz"), "$.mac_address"),
    ("deep nesting", '{"type": "vmdata", "x": ' + "[" * 100_000 + "]" * 100_000 + "}", ":$"),
    ("not UTF-8", json.dumps(_guest()).encode().replace(b"tier", b"ti\xffer"), ":byte"),
    ("not UTF-8 (latin-1 domain)", json.dumps(_cmdline(domain="x")).encode().replace(b'"x"', b'"caf\xe9"'), ":byte"),
    ("lone surrogate as a key", '{"type": "vmdata", "\\udcff": 1}', ":$"),
    ("vpn user newline", _with("vpnuserlist", ("vpn_users", 0, "user"), "bob\n* * x"), "$.vpn_users[0].user"),
]


def _tree(root: Path) -> dict[str, bytes]:
    """Every file under the root but the agent's own log and lock (which any run touches)."""
    found = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and not path.name.endswith((".log", ".lock")) and path.name != "lock":
            found[str(path.relative_to(root))] = path.read_bytes()
    return found


@pytest.fixture(scope="module")
def router(tmp_path_factory) -> Path:
    """A scratch root holding a persisted state (what a refused push must leave alone)."""
    root = tmp_path_factory.mktemp("router")
    state = Paths(root).state
    state.parent.mkdir(parents=True, exist_ok=True)
    state.write_text('{"format": "vragent/1", "cmdline": {"type": "router", "name": "r-1-VM"}}\n')
    return root


@pytest.mark.parametrize("name,content,where", CASES, ids=[c[0] for c in CASES])
def test_each_hostile_push_is_refused_with_its_path_and_changes_nothing(name, content, where, router, tmp_path,
                                                                      capsys):
    push = tmp_path / "push.json"
    if isinstance(content, dict):
        content = json.dumps(content)
    push.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    before = _tree(router)
    # --dry-run: a unit test runs in this machine's own namespace, which the agent's guard
    # (shell/guard.py) never lets an apply configure; the input is validated all the same.
    code = cli.main(["--root", str(router), "apply", "--dry-run", "--json", str(push)])
    out = capsys.readouterr()
    result = json.loads(out.out)
    assert code == 2 and result["status"] == "invalid", result
    assert result["errors"], result
    # The culprit is named; other errors may name what this machine lacks (its NICs are the host's).
    assert all(e["path"].startswith("push.json") for e in result["errors"]), result["errors"]
    assert any(where in e["path"] for e in result["errors"]), result["errors"]
    assert "Traceback" not in out.err
    assert _tree(router) == before


def test_a_push_larger_than_the_bound_is_refused_before_it_is_parsed(monkeypatch, tmp_path, router, capsys):
    from vragent.pipeline import intake

    monkeypatch.setattr(intake, "MAX_FILE_BYTES", 1000)
    monkeypatch.setattr(cli, "MAX_FILE_BYTES", 1000)
    push = tmp_path / "push.json"
    push.write_text(json.dumps(_cmdline(template="x" * 2000)))
    assert cli.main(["--root", str(router), "apply", "--dry-run", "--json", str(push)]) == 2
    errors = json.loads(capsys.readouterr().out)["errors"]
    assert errors[0]["path"] == "push.json:$" and "at most 1000 bytes" in errors[0]["message"]


def test_a_list_longer_than_the_bound_is_refused_with_its_path(monkeypatch):
    from vragent.errors import InvalidInput
    from vragent.model import RouterState
    from vragent.pipeline.intake import Document, merge_documents
    from vragent import fields

    monkeypatch.setattr(fields, "MAX_LIST", 3)
    push = sample.firewall_rules(*(sample.firewall_rule(900 + i, "tcp", (22, 22)) for i in range(4)))
    with pytest.raises(InvalidInput) as caught:
        merge_documents(RouterState(), [Document("f.json", text=json.dumps(push))])
    assert [e.path for e in caught.value.errors] == ["f.json:$.rules"]


@pytest.mark.parametrize("argument", ["", ".", "..", "processed", "a" * 300])
def test_the_shim_refuses_a_name_that_is_no_file_in_the_cache(argument, tmp_path, capsys):
    paths = Paths(tmp_path)
    (paths.cache / "processed").mkdir(parents=True)
    before = _tree(tmp_path)
    assert shims.update_config([argument], paths) == 2
    assert "Traceback" not in capsys.readouterr().err
    assert _tree(tmp_path) == before


def test_the_shim_refuses_bytes_that_are_not_utf8_with_exit_2(tmp_path, capsys, monkeypatch):
    # This test's namespace is the machine's own: let the shim past the router guard, and make
    # sure nothing of it can reach the engine (the bytes must be refused before that).
    from vragent import engine
    from vragent.shell import guard

    monkeypatch.setattr(guard, "refusal", lambda paths: None)
    monkeypatch.setattr(engine, "apply", lambda *a, **k: pytest.fail("undecodable bytes reached the engine"))
    paths = Paths(tmp_path)
    paths.cache.mkdir(parents=True)
    (paths.cache / "guest_network.json").write_bytes(json.dumps(_guest()).encode().replace(b"tier", b"\xff\xfe"))
    assert shims.update_config(["guest_network.json"], paths) == 2
    err = capsys.readouterr().err
    assert "guest_network.json:byte" in err and "Traceback" not in err


def test_through_the_real_command_no_traceback_and_exit_2(tmp_path):
    """The installed entry point (a fresh interpreter, exit_now): bytes, depth, surrogates."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    for name, content, _ in [c for c in CASES if c[0] in ("not UTF-8", "deep nesting", "vm_data surrogate",
                                                           "domain_name dhcp-script")]:
        push = tmp_path / "push.json"
        push.write_bytes(content if isinstance(content, bytes) else
                         (json.dumps(content) if isinstance(content, dict) else content).encode())
        run = subprocess.run([sys.executable, "-m", "vragent", "--root", str(tmp_path / "root"), "apply", "--dry-run",
                              str(push)],
                             capture_output=True, text=True, env=env, timeout=60)
        assert run.returncode == 2, (name, run.stderr)
        assert "Traceback" not in run.stderr, (name, run.stderr)
        assert any(line.startswith("error: push.json") for line in run.stderr.splitlines()), (name, run.stderr)


def test_a_valid_push_of_each_table_builder_still_applies_cleanly():
    """The builders above make valid pushes but for the one field they break."""
    from vragent.model import RouterState
    from vragent.pipeline.intake import Document, merge_documents

    state = merge_documents(RouterState(), [Document(f"{i}.json", text=json.dumps(p)) for i, p in
                                            enumerate([*sample_vpc.vpc(2)])])
    assert state.guest_networks
    merge_documents(RouterState(), [Document("c.json", text=json.dumps(_cmdline()))])
    before, push = SCENARIOS["loadbalancer"]
    merge_documents(RouterState(), [Document(f"{i}.json", text=json.dumps(p)) for i, p in enumerate([*before, push])])
