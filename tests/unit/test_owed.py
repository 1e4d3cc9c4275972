"""Crash consistency of daemons (pure parts and the record): an action owed by a killed
apply is planned even where the files already match, and a killed apply's temporary and
candidate files are swept by the next."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from vragent.desired import DaemonDesired, Observed
from vragent.paths import Paths
from vragent.pipeline.plan import daemon_step
from vragent.shell import leftovers, owed
from vragent.shell.services import Runtime, ServiceSpec

CONF = Path("/r/etc/x.conf")


def _runtime(tmp_path: Path) -> Runtime:
    spec = ServiceSpec(name="x", argv=lambda paths: ["true"], pidfile=lambda paths: tmp_path / "x.pid")
    return Runtime(backend=None, specs={"x": spec}, paths=Paths(tmp_path))


def _observed(owed_actions: dict, running: bool = True, content: str = "a\n") -> Observed:
    return Observed(tables={}, sysctls={}, links={}, addresses={}, default_route=None, read_only_sysctls=set(),
                    files={str(CONF): content}, running={"x": 123 if running else None}, owed=owed_actions)


def _daemon(**options) -> DaemonDesired:
    return DaemonDesired(service="x", enabled=True, files={CONF: ("a\n", 0o644)}, **options)


def test_files_in_place_and_nothing_owed_plan_nothing(tmp_path):
    assert daemon_step(_daemon(), _observed({}), _runtime(tmp_path)) is None


def test_an_owed_reload_is_planned_though_the_files_match(tmp_path):
    step = daemon_step(_daemon(), _observed({"x": "reload"}), _runtime(tmp_path))
    assert step.action == "reload" and step.changes == [] and "owed" in step.reason
    assert step.owed_record == owed.record_path(Paths(tmp_path).run_dir, "x")


def test_an_owed_restart_is_not_settled_by_a_reload(tmp_path):
    observed = _observed({"x": "restart"}, content="old\n")
    assert daemon_step(_daemon(), observed, _runtime(tmp_path)).action == "restart"


def test_an_owed_action_of_a_daemon_that_is_gone_is_cleared_by_a_step_that_does_nothing(tmp_path):
    daemon = DaemonDesired(service="x", enabled=False, files={CONF: (None, 0o644)})
    step = daemon_step(daemon, _observed({"x": "reload"}, running=False, content=None), _runtime(tmp_path))
    assert step.action == "none" and step.changes == []


def test_the_record_keeps_the_strongest_action_and_reads_back(tmp_path):
    path = owed.record_path(tmp_path, "haproxy")
    owed.record(path, "restart")
    owed.record(path, "reload")
    owed.record(owed.record_path(tmp_path, "dnsmasq"), "reload")
    assert owed.read(tmp_path) == {"haproxy": "restart", "dnsmasq": "reload"}
    owed.clear(path)
    assert owed.read(tmp_path) == {"dnsmasq": "reload"}


def test_a_killed_writers_temporary_files_and_candidates_are_swept_a_live_ones_kept(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    live = tmp_path / "hosts"
    live.write_text("live\n")
    stale = tmp_path / f".hosts.{dead}.0badf00d.tmp"
    stale.write_text("half")
    mine = tmp_path / f".hosts.{os.getppid()}.0badf00d.tmp"  # a process that is alive
    mine.write_text("busy")
    candidate = tmp_path / "hosts.new"
    candidate.write_text("candidate")
    removed = leftovers.sweep([live], [candidate, tmp_path / "absent.new"])
    assert sorted(removed) == sorted([stale, candidate])
    assert live.read_text() == "live\n" and mine.exists() and not stale.exists() and not candidate.exists()
