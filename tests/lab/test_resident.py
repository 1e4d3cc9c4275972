"""The resident agent (`vragent serve`, vragent/ops/resident.py): the shims hand their push
to it over run/vragent/agent.sock; with no agent, a dead one, one that does not answer or one
whose code changed, the shim runs the push itself. Real router, real iptables, traffic."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.lab.checks import apply_ok, connects
from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import EXTRA_PUBLIC_IPS, VM1_IP
from vragent.lab.traffic import TcpServer
from vragent.ops.resident import SOCKET

REPO = Path(__file__).resolve().parents[2]
PF_IP = EXTRA_PUBLIC_IPS[0]


@pytest.fixture
def router(lab, tmp_path) -> RouterAgent:
    agent = RouterAgent(lab, tmp_path / "root")
    applied = agent.apply(sample.cmdline(), sample.ips(), sample.egress_allowed())
    assert applied.returncode == 0, applied.errors
    return agent


class Resident:
    """`vragent serve` in the router's namespace, stopped (by its PID) afterwards."""

    def __init__(self, lab, router: RouterAgent):
        self.socket = router.root / SOCKET
        self.process = subprocess.Popen(["ip", "netns", "exec", lab.ns("vr"), router.python, "-m", "vragent",
                                         "--root", str(router.root), "serve"], cwd=REPO)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            assert self.process.poll() is None and time.monotonic() < deadline, "the resident agent did not start"
            time.sleep(0.05)

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        return self.process.wait(10)


@pytest.fixture
def resident(lab, router):
    agent = Resident(lab, router)
    yield agent
    agent.stop()


def push(lab, router: RouterAgent, payload, shim: str = "update_config.py"):
    cache = router.root / "var/cache/cloud"
    cache.mkdir(parents=True, exist_ok=True)
    name, body = sample.named(payload)[0]
    (cache / name).write_text(sample.wire_json(body))
    result = lab.run("vr", ["env", f"VRAGENT_ROOT={router.root}", f"PYTHONPATH={REPO}", router.python,
                            str(REPO / "packaging" / shim), name], check=False)
    return name, result


def served(router: RouterAgent, name: str) -> bool:
    log = (router.root / "var/log/cloud-scripts.log").read_text()
    return f"resident agent: update_config {name} " in log


def test_a_push_through_the_shim_is_applied_by_the_resident_agent(lab, router, resident):
    forwards = sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22))
    name, done = push(lab, router, forwards)
    assert done.returncode == 0, done.stderr
    assert served(router, name)
    name, done = push(lab, router, sample.firewall_rules(sample.firewall_rule(20, ports=2222, public_ip=PF_IP)))
    assert done.returncode == 0 and served(router, name)
    assert (router.root / "var/cache/cloud/processed" / f"{name}.gz").exists()
    with TcpServer(lab, "vm1", 22):
        assert connects(lab, "up", PF_IP, 2222)
    # What it applied is converged: the same pushes again change nothing.
    apply_ok(router, forwards, sample.firewall_rules(sample.firewall_rule(20, ports=2222, public_ip=PF_IP)))

    # Invalid input: the shim's exit code and the agent's errors, and nothing changes.
    before = router.iptables_save()
    name, refused = push(lab, router, sample.staticnat_rules(sample.staticnat_rule("198.51.100.99", VM1_IP)))
    assert refused.returncode == 2 and "198.51.100.99 is not a public IP" in refused.stderr
    assert served(router, name) and router.iptables_save() == before


def test_concurrent_shims_are_served_one_at_a_time_and_none_is_lost(lab, router, resident):
    results = []
    payloads = [sample.forward_rules(sample.forward_rule(PF_IP, 3000 + n, VM1_IP, 22)) for n in range(4)]
    threads = [threading.Thread(target=lambda p=p: results.append(push(lab, router, p))) for p in payloads]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(result.returncode == 0 for _, result in results), [r.stderr for _, r in results]
    assert all(served(router, name) for name, _ in results)
    saved = router.iptables_save()
    assert all(f"--dport {3000 + n} -j DNAT" in saved for n in range(4))


def test_without_an_answer_the_shim_runs_the_push_itself(lab, router):
    """No agent, a dead agent's stale socket, and an agent that accepts and dies before it
    answers: each time the push is applied by the shim's own process."""
    name, done = push(lab, router, sample.forward_rules(sample.forward_rule(PF_IP, 2001, VM1_IP, 22)))
    assert done.returncode == 0 and not served(router, name)

    agent = Resident(lab, router)
    agent.process.kill()  # SIGKILL: its socket file stays behind, nobody listens
    agent.process.wait()
    assert agent.socket.exists()
    name, done = push(lab, router, sample.forward_rules(sample.forward_rule(PF_IP, 2002, VM1_IP, 22)))
    assert done.returncode == 0, done.stderr

    # A listener that takes the push and closes without a word (a child killed mid-push).
    agent.socket.unlink()
    mute = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    mute.bind(str(agent.socket))
    mute.listen(1)

    def swallow():
        connection, _ = mute.accept()
        connection.recv(1 << 16)
        connection.close()

    taker = threading.Thread(target=swallow)
    taker.start()
    name, done = push(lab, router, sample.forward_rules(sample.forward_rule(PF_IP, 2003, VM1_IP, 22)))
    taker.join(10)
    mute.close()
    assert done.returncode == 0, done.stderr
    saved = router.iptables_save()
    assert all(f"--dport {port} -j DNAT" in saved for port in (2001, 2002, 2003))


def test_an_agent_whose_code_changed_leaves_the_push_to_the_shim_and_exits(lab, router, resident):
    package_init = REPO / "vragent" / "__init__.py"
    stat = package_init.stat()
    try:
        os.utime(package_init, ns=(stat.st_atime_ns, time.time_ns()))
        name, done = push(lab, router, sample.forward_rules(sample.forward_rule(PF_IP, 2004, VM1_IP, 22)))
    finally:
        os.utime(package_init, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert done.returncode == 0, done.stderr
    assert not served(router, name)
    assert resident.process.wait(10) == 0
    assert "--dport 2004 -j DNAT" in router.iptables_save()
