"""The systemd backend asks for every daemon's main PID in one systemctl call.

systemd cannot run here (no PID 1 of its own), so a stand-in `systemctl` on PATH answers
as `systemctl show -p Id -p MainPID UNIT...` does: one block per unit, blank-line
separated, properties in systemd's order, MainPID=0 for a unit that is not running."""

from __future__ import annotations

import os
import signal

from vragent.shell.services import ServiceSpec, SystemdBackend


def spec(name: str) -> ServiceSpec:
    return ServiceSpec(name, argv=lambda paths: [], pidfile=lambda paths: None, reload_signal=signal.SIGHUP)


def test_one_systemctl_answers_for_every_daemon(tmp_path, monkeypatch):
    calls = tmp_path / "calls"
    fake = tmp_path / "systemctl"
    fake.write_text(f"""#!/bin/sh
echo "$@" >> {calls}
printf 'MainPID=4242\\nId=vragent-dnsmasq.service\\n\\nMainPID=0\\nId=vragent-haproxy.service\\n\\n'
printf 'Id=vragent-metadata.service\\nMainPID=77\\n'
""")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    found = SystemdBackend().running_all([spec("dnsmasq"), spec("haproxy"), spec("metadata"), spec("radvd")])
    assert found == {"dnsmasq": 4242, "haproxy": None, "metadata": 77, "radvd": None}
    assert calls.read_text().splitlines() == [
        "show -p Id -p MainPID vragent-dnsmasq.service vragent-haproxy.service vragent-metadata.service "
        "vragent-radvd.service"]


def test_no_daemon_asks_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no systemctl at all: a call would fail
    assert SystemdBackend().running_all([]) == {}
