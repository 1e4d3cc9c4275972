"""Operator mistakes end in one line and a documented exit code; the guard's marker; the
readable dry-run and drift texts (pure)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vragent.pipeline import explain
from vragent.shell import guard
from vragent.paths import Paths

REPO = Path(__file__).resolve().parents[2]
CMDLINE = REPO / "tests/unit/wire_real/cmd_line.json"


def vragent(*args: str, user: str | None = None, root: Path, **options) -> subprocess.CompletedProcess:
    argv = [sys.executable, "-m", "vragent", "--root", str(root), *args]
    if user is not None:
        argv = ["runuser", "-u", user, "--", *argv]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, cwd=REPO,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, **options)


def one_line(done: subprocess.CompletedProcess) -> str:
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr
    return lines[0]


def test_a_missing_or_unreadable_push_is_one_line_and_exit_2(tmp_path):
    for args in (["apply", "/nonexistent/push.json"], ["render", "/nonexistent/push.json"]):
        done = vragent(*args, root=tmp_path)
        assert done.returncode == 2 and "/nonexistent/push.json: No such file or directory" in one_line(done)


@pytest.mark.skipif(os.geteuid() != 0, reason="switching to an unprivileged user needs root")
def test_not_root_is_one_line_and_exit_2_and_nothing_is_written(tmp_path):
    tmp_path.chmod(0o755)
    for args in (["apply", str(CMDLINE)], ["apply", "--dry-run", str(CMDLINE)], ["status"], ["restore"]):
        done = vragent(*args, user="nobody", root=tmp_path)
        assert done.returncode == 2 and "must run as root" in one_line(done), (args, done.stderr)
    state = tmp_path / "var/lib/vragent/state.json"
    state.parent.mkdir(parents=True)
    state.write_text("{}")
    state.chmod(0o600)
    done = vragent("show", user="nobody", root=tmp_path)
    assert done.returncode == 2 and "Permission denied; run vragent as root" in one_line(done)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["lib", "state.json", "var", "vragent"]


def test_a_closed_output_pipe_is_exit_141_without_a_traceback(tmp_path):
    for args in (["render", str(CMDLINE)], ["--help"]):
        process = subprocess.Popen([sys.executable, "-m", "vragent", "--root", str(tmp_path), *args], cwd=REPO,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        process.stdout.close()  # the reader (`| head`) is gone before the first line
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == 141 and stderr == "", (args, stderr)


# -- the guard's marker ----------------------------------------------------------------------------

def test_without_a_marker_the_namespace_is_not_a_routers(tmp_path):
    reason = guard.refusal(Paths.from_root(tmp_path))
    assert reason.startswith(guard.REFUSING) and str(tmp_path / "etc/vragent/this-is-a-router") in reason
    assert guard.OPT_IN in reason


def test_a_machine_marker_and_a_marker_for_this_namespace_allow_it(tmp_path, monkeypatch):
    paths = Paths.from_root(tmp_path)
    guard.mark(paths)
    assert paths.router_marker.read_text() == "machine\n" and guard.refusal(paths) is None
    monkeypatch.setattr(guard, "NETNS_DIR", tmp_path / "netns")
    (tmp_path / "netns").mkdir()
    (tmp_path / "netns/here").symlink_to("/proc/self/ns/net")  # stat() sees this process's namespace
    guard.mark(paths, "here")
    assert guard.refusal(paths) is None
    guard.mark(paths, "gone")
    assert "does not exist" in guard.refusal(paths)
    paths.router_marker.write_text("yes please\n")
    assert "expected `machine` or `netns NAME`" in guard.refusal(paths)


def test_a_marker_for_another_namespace_refuses(tmp_path, monkeypatch):
    paths = Paths.from_root(tmp_path)
    monkeypatch.setattr(guard, "_named_netns", lambda name: (0, 1))  # some other namespace's identity
    guard.mark(paths, "vrlab-vr")
    assert "ip netns exec vrlab-vr" in guard.refusal(paths)


# -- readable plans ----------------------------------------------------------------------------------

RUNNING = ":INPUT DROP\n:vr-INPUT -\n:vr-old -\n-A INPUT -j vr-INPUT\n" + "".join(
    f"-A vr-INPUT -s 203.0.113.{n}/32 -j ACCEPT\n" for n in range(100)) + "-A vr-old -j DROP\n"
DESIRED = RUNNING.replace("-A vr-INPUT -s 203.0.113.50/32 -j ACCEPT\n",
                          "-A vr-INPUT -s 203.0.113.50/32 -j ACCEPT\n-A vr-INPUT -s 198.51.100.7/32 -j ACCEPT\n")
DESIRED = DESIRED.replace(":vr-old -\n", ":vr-new -\n").replace("-A vr-old -j DROP\n", "-A vr-new -j RETURN\n")
DESIRED = DESIRED.replace(":INPUT DROP", ":INPUT ACCEPT")


def test_a_table_diff_shows_only_what_changes_each_hunk_naming_its_chain():
    text = explain.table_diff("iptables/filter", RUNNING, DESIRED)
    assert text.splitlines() == [
        "--- iptables/filter (running)", "+++ iptables/filter (desired)",
        "@@ policy INPUT @@", "-:INPUT DROP", "+:INPUT ACCEPT",
        "@@ new chain vr-new (1 rules) @@", "+-A vr-new -j RETURN",
        "@@ chain vr-old removed (1 rules) @@", "--A vr-old -j DROP",
        "@@ chain vr-INPUT from rule 50 (100 -> 101 rules) @@",
        " -A vr-INPUT -s 203.0.113.49/32 -j ACCEPT", " -A vr-INPUT -s 203.0.113.50/32 -j ACCEPT",
        "+-A vr-INPUT -s 198.51.100.7/32 -j ACCEPT",
        " -A vr-INPUT -s 203.0.113.51/32 -j ACCEPT", " -A vr-INPUT -s 203.0.113.52/32 -j ACCEPT"]
    assert explain.table_diff("iptables/filter", RUNNING, RUNNING) == ""


def test_table_differences_say_what_is_there_and_what_should_be():
    assert explain.table_differences("iptables filter", RUNNING, DESIRED) == [
        "iptables filter: policy INPUT is DROP, should be ACCEPT",
        "iptables filter: chain vr-new is missing (1 rules)",
        "iptables filter: chain vr-old should not exist",
        "iptables filter: missing rule -A vr-INPUT -s 198.51.100.7/32 -j ACCEPT (should be at vr-INPUT position 52)"]
    dropped = RUNNING.replace("-A vr-INPUT -s 203.0.113.7/32 -j ACCEPT\n", "")
    assert explain.table_differences("iptables filter", RUNNING, dropped) == [
        "iptables filter: unexpected rule -A vr-INPUT -s 203.0.113.7/32 -j ACCEPT (at vr-INPUT position 8)"]
    assert explain.table_differences("iptables filter", RUNNING, DESIRED, only={"INPUT"}) == [
        "iptables filter: policy INPUT is DROP, should be ACCEPT"]


def test_the_state_diff_names_sections_and_entries_never_one_long_line():
    old = {"format": "vragent/1", "cmdline": {"dns1": "198.51.100.1", "domain": "a.internal"},
           "port_forwards": [{"public_ip": "198.51.100.20", "port": n} for n in range(5000)]}
    new = json.loads(json.dumps(old))
    new["port_forwards"].insert(10, {"public_ip": "198.51.100.20", "port": 9999})
    new["cmdline"]["dns1"] = "198.51.100.2"
    new["static_nats"] = [{"public_ip": "198.51.100.21"}]
    text = explain.state_diff(json.dumps(old, separators=(",", ":")), json.dumps(new, separators=(",", ":")),
                              "saved", "after")
    assert text.splitlines() == [
        "--- saved", "+++ after",
        "@@ cmdline.dns1 @@", '-"198.51.100.1"', '+"198.51.100.2"',
        "@@ port_forwards: 5000 -> 5001 entries (1 added, 0 removed) @@",
        '+{"port": 9999, "public_ip": "198.51.100.20"}',
        "@@ static_nats: 0 -> 1 entries (1 added, 0 removed) @@", '+{"public_ip": "198.51.100.21"}']
    assert explain.state_diff(json.dumps(old), json.dumps(old), "saved", "after") == ""


def test_file_differences_quote_the_lines_and_hide_private_files():
    assert explain.file_differences("/etc/x.conf", "a\nb\n", "a\nc\n", 0o644) == [
        "file /etc/x.conf: there 'b'", "file /etc/x.conf: should be 'c'"]
    assert explain.file_differences("/etc/key.pem", "secret\n", "other\n", 0o600) == [
        "file /etc/key.pem differs (private, mode 0600; content not shown)"]
    assert explain.file_differences("/etc/x.conf", None, "a\n", 0o644) == ["file /etc/x.conf is missing"]


def test_an_entry_changed_in_place_shows_the_fields_that_changed_and_long_values_are_elided():
    old = {"vm_data": [{"ip": "192.0.2.11", "user_data": "A" * 5000, "hostname": "web-01"},
                       {"ip": "192.0.2.12", "hostname": "db-01"}]}
    new = json.loads(json.dumps(old))
    new["vm_data"][0]["user_data"] = "B" * 5000
    lines = explain.state_diff(json.dumps(old), json.dumps(new), "saved", "after").splitlines()
    assert lines[2:4] == ["@@ vm_data: 2 -> 2 entries (0 added, 0 removed, 1 changed) @@", "@@ vm_data[0].user_data @@"]
    assert lines[4].startswith('-"AAAA') and lines[4].endswith("... (5002 characters)") and len(lines) == 6
    assert max(map(len, lines)) < 450
