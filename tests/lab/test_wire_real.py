"""The management server's real pushes (tests/unit/wire_real/) replayed against a lab router
through the entry points it calls: `update_config.py cmd_line.json` at boot, `vr_cfg.sh -c`
with a fresh router's full resync batch, then each day-2 push with the scripts it comes with
(`update_config.py NAME [false]`, `configure.py monitor_service.json`). Every call exits 0
and prints nothing, as the incumbent does on success; real traffic proves what each push is
for, and re-applying any of them changes nothing."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from vragent.lab.agent import RouterAgent
from vragent.lab.dhcp import dig
from vragent.lab.guestdata import metadata, password
from vragent.lab.lbtraffic import HttpNameServer, http_answers
from vragent.lab.topology import PUBLIC_GATEWAY, ROUTER_GUEST_IP, UPSTREAM_SOURCES
from vragent.lab.traffic import TcpServer, ping, tcp_connect

REPO = Path(__file__).resolve().parents[2]
WIRE = REPO / "tests/unit/wire_real"
BATCH = next((WIRE / "resync").glob("VR-*.cfg"))
SEQUENCE = json.loads((WIRE / "day2/sequence.json").read_text())
SNAT, PF, SNIP, NEW = "198.51.100.10", "198.51.100.20", "198.51.100.21", "198.51.100.22"
VM1, VM2 = "192.0.2.11", "192.0.2.12"
ALLOWED, OTHER = UPSTREAM_SOURCES
EVENTS = ("vm_password.json",)  # handed over again on every apply: not desired state


class ManagementServer:
    """Plays the management server: copies a file into /var/cache/cloud and runs the scripts."""

    def __init__(self, lab, router: RouterAgent):
        self.lab, self.router = lab, router
        self.cache = router.root / "var/cache/cloud"
        self.cache.mkdir(parents=True, exist_ok=True)

    def run(self, script: str, *args: str):
        env = ["env", f"VRAGENT_ROOT={self.router.root}", f"PYTHONPATH={REPO}"]
        if script == "vr_cfg.sh":
            argv = ["sh", str(REPO / "packaging/vr_cfg.sh"), *args]
        else:
            argv = [self.router.python, str(REPO / "packaging" / script), *args]
        done = self.lab.run("vr", env + argv, check=False, timeout=180)
        # What the management server reads: the exit code, and stdout/stderr as the details.
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), (script, args, done.stderr)

    def boot(self) -> None:
        shutil.copy(WIRE / "cmd_line.json", self.cache / "cmd_line.json")
        self.run("update_config.py", "cmd_line.json")  # cloud-postinit

    def resync(self) -> None:
        shutil.copy(BATCH, self.cache / BATCH.name)
        self.run("vr_cfg.sh", "-c", str(self.cache / BATCH.name))
        assert (self.cache / "processed" / f"{BATCH.name}.gz").exists()

    def day2(self, title: str) -> list[Path]:
        (step,) = [s for s in SEQUENCE if s["step"].startswith(title)]
        files = []
        for item in step["pushes"]:
            source = WIRE / "day2" / item["file"]
            shutil.copy(source, self.cache / source.name)
            for script, *args in item["scripts"]:
                self.run(script, *args)
            files.append(source)
        return files


def converged(router: RouterAgent, *pushes: Path | str) -> None:
    """The same pushes again, as remembered and with --full: nothing to do."""
    before = router.iptables_save()
    for again in router.reapply(*pushes):
        assert again.returncode == 0, again.errors
        assert (again.result["status"], again.steps) == ("unchanged", []), again.steps
    assert router.iptables_save() == before


def desired(files: list[Path]) -> list[Path]:
    return [f for f in files if not f.name.startswith(EVENTS)]


def seen_from(lab, role: str, port: int) -> str | None:
    with TcpServer(lab, "up", port):
        result = tcp_connect(lab, role, PUBLIC_GATEWAY, port, timeout=1.0)
    return result.peer_seen if result.ok else None


def reaches(lab, dst: str, port: int, vm: str, vm_port: int, source: str = ALLOWED) -> bool:
    """A connection from the internet to dst:port arrives at vm:vm_port."""
    with TcpServer(lab, vm, vm_port):
        return tcp_connect(lab, "up", dst, port, timeout=1.0, source=source).ok


def lb_names(lab, count: int = 6) -> set[str]:
    deadline, names = time.monotonic() + 10, set()
    while time.monotonic() < deadline and names != {"vm1", "vm2"}:
        names |= {a for a in http_answers(lab, "up", PF, 80, count=count, timeout=1.0) if not a.startswith("!")}
    return names


@pytest.fixture
def ms(lab, tmp_path) -> ManagementServer:
    server = ManagementServer(lab, RouterAgent(lab, tmp_path / "root"))
    server.boot()
    return server


def test_a_booted_router_without_its_resync_lets_no_guest_out(lab, ms):
    assert seen_from(lab, "vm2", 8080) is None  # egress closed until the offering's policy arrives


def test_the_resync_batch_and_every_day2_push_do_what_they_say(lab, ms):
    router = ms.router
    ms.resync()
    assert seen_from(lab, "vm2", 8080) == SNAT  # source NAT, egress opened by the system rule
    assert seen_from(lab, "vm1", 8081) == SNIP  # static NAT both ways
    assert reaches(lab, SNIP, 80, "vm1", 80, source=OTHER)
    assert reaches(lab, PF, 2222, "vm1", 22) and not reaches(lab, PF, 2222, "vm1", 22, source=OTHER)
    assert ping(lab, "up", SNAT)  # icmp -1/-1: any type
    assert dig(lab, "vm2", ROUTER_GUEST_IP, "web-01") == [VM1]
    instance, user_data = metadata(lab, "vm1", ROUTER_GUEST_IP, "/latest/meta-data/instance-id", "/latest/user-data")
    assert instance.text == "6e1f0a3c-5b7d-4e2f-9a01-000000000011"
    assert user_data.body == b"#cloud-config\nruncmd:\n  - echo hello"
    # The resync batch has service monitoring off (disable_monitoring "false", the default):
    # monitor.conf then lists no service for the monitor to restart.
    assert "[webserver]" not in (router.root / "etc/monitor.conf").read_text()
    converged(router, BATCH.read_text())
    before = router.iptables_save()
    empty = ms.cache / "VR-5eed0000-0000-4000-8000-0000000000ff.cfg"  # nothing queued: the header only
    empty.write_text(BATCH.read_text().split("<file>")[0])
    ms.run("vr_cfg.sh", "-c", str(empty))
    assert router.iptables_save() == before

    files = ms.day2("vm2 added")
    assert dig(lab, "vm1", ROUTER_GUEST_IP, "db-01") == [VM2]
    (instance,) = metadata(lab, "vm2", ROUTER_GUEST_IP, "/latest/meta-data/instance-id")
    assert instance.text == "6e1f0a3c-5b7d-4e2f-9a01-000000000012"
    offered, again = password(lab, "vm2", ROUTER_GUEST_IP, "send_my_password", "send_my_password")
    assert offered.text == again.text == "fT7#qe=9&<x>'"  # pending until the VM acknowledges it
    converged(router, *desired(files))

    ms.day2("vm2 restarted from a template without password")  # the literal "saved_password"
    (answer,) = password(lab, "vm2", ROUTER_GUEST_IP, "send_my_password")
    assert answer.text == "saved_password"  # nothing pending: the VM keeps its password

    files = ms.day2("rule added")
    assert reaches(lab, PF, 8080, "vm2", 80, source=OTHER)
    converged(router, *files)
    files = ms.day2("rule revoked")
    assert not reaches(lab, PF, 8080, "vm2", 80, source=OTHER)
    assert reaches(lab, PF, 2222, "vm1", 22)  # the rules resent alongside stay
    converged(router, *files)

    files = ms.day2("public IP associated")
    assert reaches(lab, NEW, 22, "vm2", 22, source=OTHER)
    assert seen_from(lab, "vm2", 8082) == NEW
    converged(router, *files)
    files = ms.day2("public IP disassociated")
    assert not reaches(lab, NEW, 22, "vm2", 22, source=OTHER)
    assert seen_from(lab, "vm2", 8083) == SNAT
    assert NEW not in lab.run("vr", ["ip", "-4", "addr", "show", "dev", "eth2"]).stdout
    converged(router, *files)

    with HttpNameServer(lab, "vm1", 80), HttpNameServer(lab, "vm2", 80):
        files = ms.day2("load balancer rule")
        assert lb_names(lab) == {"vm1", "vm2"}
        converged(router, *files)
        files = ms.day2("the load balancer rule deleted")
        assert all(a.startswith("!") for a in http_answers(lab, "up", PF, 80, count=2, timeout=1.0))
        converged(router, *files)

    with TcpServer(lab, "up", 8080), TcpServer(lab, "up", 8081):
        files = ms.day2("egress default flipped to deny")
        assert tcp_connect(lab, "vm2", PUBLIC_GATEWAY, 8080, timeout=1.0).ok  # the one egress rule
        assert not tcp_connect(lab, "vm2", PUBLIC_GATEWAY, 8081, timeout=1.0).ok  # the new default
        converged(router, *files)

    files = ms.day2("health-check settings refreshed")
    assert not (ms.cache / "processed" / f"{files[0].name}.gz").exists()  # `false`: not archived
    conf = (router.root / "etc/monitor.conf").read_text()
    # Service monitoring stays off (the refresh keeps the flag): no service to restart.
    assert not any(f"[{name}]" in conf for name in ("ssh", "dhcp", "webserver"))
    checks = json.loads((router.root / "root/health_checks_data.json").read_text())
    assert checks["health_checks_enabled"] is True and checks["health_checks_advanced_run_interval"] == 10
    converged(router, *files)
