"""A redundant router pair in the lab, and the instruments that measure its failovers.

Both routers (``vr`` and ``vr2``) are configured by the real agent with the pushes the
management server sends a redundant pair, each runs ``vragent supervise`` (the lab's
stand-in for systemd), and real packets from the guest VMs tell what happened:

- `Prober`: an ICMP echo stream from a VM with a send and a receive timestamp per probe
  (CLOCK_MONOTONIC, which network namespaces share with the test), so a failover's outage
  is measured from the moment of the fault to the first answered probe;
- `vip_owners`: the MACs that answer ARP for the VIP on the guest segment (one, or two
  after a split brain).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.topology import (ROUTER_GUEST_IP, ROUTER_MACS, VM1_IP, VPC_ROUTER2_MACS, VPC_ROUTER_MACS, VPC_TIERS,
                                  Lab, switch_port)
from vragent.lab.traffic import ICMP_ECHO_SOCKET, PYTHON, _python

ROLES = ("vr", "vr2")
NUMBER = {"vr": 1, "vr2": 2}
VIP = ROUTER_GUEST_IP
SUPERVISE_INTERVAL = 0.5


def pair_pushes(router: int, **cmdline_overrides: str) -> list[dict]:
    """What the management server sends each router of a redundant pair at start."""
    cmdline = sample.cmdline(router, redundant=True)
    cmdline["cmd_line"].update(cmdline_overrides)
    return [cmdline, sample.ips(), sample.guestnetwork(router, redundant=True), sample.egress_allowed()]


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """The first truthy value of predicate() within timeout seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


class Pair:
    """Two routers of one redundant pair, each with its agent root under `directory`."""

    def __init__(self, lab: Lab, directory: Path, supervise_interval: float = SUPERVISE_INTERVAL,
                 advert_int: int = 1, pushes: Callable[..., list[dict]] = pair_pushes,
                 vrrp_device: str = "eth0"):
        self.lab = lab
        # What each router gets first (pushes(router number, **cmdline overrides)), and the NIC
        # VRRP runs on: the isolated pair's defaults, or vpc_pair_pushes and a VPC's first tier.
        self.pushes, self.vrrp_device = pushes, vrrp_device
        self.advert_int = advert_int
        self.supervise_interval = supervise_interval
        self.routers = {role: RouterAgent(lab, directory / role, role=role) for role in ROLES}
        # The agents in the namespaces (and keepalived's notify reader, which inherits their
        # environment) run this very vragent, whatever an editable install points at.
        source = str(Path(__file__).resolve().parents[2])
        for router in self.routers.values():
            router.env["PYTHONPATH"] = os.pathsep.join(p for p in (source, os.environ.get("PYTHONPATH")) if p)
        self.supervisors: dict[str, subprocess.Popen] = {}

    # -- bring-up --------------------------------------------------------------------------

    def start(self, timeout: float = 15.0) -> str:
        """Configure both routers, start their supervisors; returns the PRIMARY's role."""
        for role, router in self.routers.items():
            result = router.apply(*self.pushes(NUMBER[role], advert_int=str(self.advert_int)))
            if result.returncode != 0:
                raise AssertionError(f"{role}: {result.errors or result.stderr}")
        for role in ROLES:
            self.start_supervisor(role)
        primary = wait_until(self.primary, timeout)
        if not primary:
            raise AssertionError(f"no PRIMARY after {timeout} s: {self.statuses()}")
        return primary

    def start_supervisor(self, role: str) -> None:
        router = self.routers[role]
        self.supervisors[role] = self.lab.popen(
            role, router.command("supervise", "--interval", str(self.supervise_interval)))

    def apply(self, role: str, *payloads):
        return self.routers[role].apply(*payloads)

    # -- what each router says ----------------------------------------------------------------

    def status(self, role: str) -> dict:
        """`vragent status --json`'s redundancy section: role, transitions, VRID, fingerprint..."""
        proc = self.routers[role].run("status", "--json", timeout=20)
        # exit 3: drift (mid-transition, say); the report is whole either way
        report = json.loads(proc.stdout) if proc.returncode in (0, 3) and proc.stdout.strip() else {}
        return report.get("redundancy", {})

    def role(self, role: str) -> str:
        """What checkrouter.sh reports: PRIMARY, BACKUP or FAULT."""
        out = self.routers[role].run("status", "--checkrouter", timeout=20).stdout.strip()
        return out.removeprefix("Status: ") if out.startswith("Status: ") else "?"

    def statuses(self) -> dict[str, str]:
        return {role: self.role(role) for role in ROLES}

    def primary(self) -> str | None:
        """The one PRIMARY, or None when there is none or more than one."""
        found = [role for role, status in self.statuses().items() if status == "PRIMARY"]
        return found[0] if len(found) == 1 else None

    def other(self, role: str) -> str:
        return ROLES[1 - ROLES.index(role)]

    def transitions(self) -> dict[str, int]:
        return {role: self.status(role).get("transitions", 0) for role in ROLES}

    def pid(self, role: str, name: str) -> int | None:
        try:
            pid = int((self.routers[role].root / "run/vragent" / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _alive(pid) else None

    def keepalived_pids(self, role: str) -> list[int]:
        return [pid for name in ("keepalived.pid", "keepalived_vrrp.pid") if (pid := self.pid(role, name))]

    # -- faults ----------------------------------------------------------------------------------

    def kill_keepalived(self, role: str) -> float:
        """SIGKILL every keepalived process of the router (as the OOM killer or a cgroup kill
        would): keepalived 2.2.7 then leaves its VIP behind. Returns the moment of the kill."""
        pids = self.keepalived_pids(role)
        if not pids:
            raise AssertionError(f"{role}: keepalived is not running")
        # Stop them all first: killed one by one, the VRRP process would get its parent-death
        # SIGTERM in between and shut down gracefully (priority 0), which is not a hard failure.
        moment = time.monotonic()
        for sig in (signal.SIGSTOP, signal.SIGKILL):
            for pid in pids:
                os.kill(pid, sig)
        return moment

    def stop_keepalived(self, role: str) -> float:
        """A graceful stop (SIGTERM): keepalived sends priority 0 so the peer takes over at once."""
        pid = self.pid(role, "keepalived.pid")
        if pid is None:
            raise AssertionError(f"{role}: keepalived is not running")
        moment = time.monotonic()
        os.kill(pid, signal.SIGTERM)
        return moment

    def guest_link(self, role: str, up: bool) -> float:
        """Pull (or plug back) the router's guest cable: its switch port goes down, so the
        router's eth0 loses carrier as with a dead hypervisor NIC."""
        moment = time.monotonic()
        self.lab.run("sw", ["ip", "link", "set", switch_port(role, self.vrrp_device), "up" if up else "down"])
        return moment


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2] != "Z"


# -- probes -----------------------------------------------------------------------------------

_PROBER = r"""
import os, select, socket, struct, sys, time
dst, interval, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
""" + ICMP_ECHO_SOCKET + r"""log = open(out, "w", buffering=1)
seq, next_send = 0, time.monotonic()
print("ready", flush=True)
while True:
    now = time.monotonic()
    if now >= next_send:
        seq += 1
        payload = b"vragent-probe-" + str(seq).encode().rjust(6, b"0")
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq & 0xFFFF)
        packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq & 0xFFFF) + payload
        try:
            sock.sendto(packet, (dst, 0))
        except OSError:
            pass  # no route: counted as lost
        log.write(f"s {seq} {now:.6f}\n")
        next_send += interval
        if next_send < now:
            next_send = now + interval
    wait = max(0.0, next_send - time.monotonic())
    if select.select([sock], [], [], wait)[0]:
        data, (sender, _) = sock.recvfrom(4096)
        offset = (data[0] & 0x0F) * 4
        kind, _, _, rid, _ = struct.unpack("!BBHHH", data[offset:offset + 8])
        if kind == 0 and rid == ident and sender == dst:
            body = data[offset + 8:]
            if body.startswith(b"vragent-probe-"):
                log.write(f"r {int(body[14:20])} {time.monotonic():.6f}\n")
"""


@dataclass
class ProbeLog:
    sent: dict[int, float] = field(default_factory=dict)  # seq -> monotonic send time
    replies: dict[int, float] = field(default_factory=dict)  # seq -> monotonic receive time

    def lost(self, start: float = 0.0, end: float = float("inf")) -> list[int]:
        return sorted(seq for seq, at in self.sent.items() if start <= at <= end and seq not in self.replies)

    def outage_after(self, moment: float, settle: float = 1.0) -> float:
        """Seconds from `moment` until traffic flows again: the send time of the first
        answered probe after the last lost one (0 when nothing was lost). Probes of the last
        `settle` seconds may still be in flight and are not judged."""
        end = max(self.sent.values(), default=moment) - settle
        lost = self.lost(moment, end)
        if not lost:
            return 0.0
        last = self.sent[lost[-1]]
        answered = [self.sent[seq] for seq in self.replies if self.sent.get(seq, 0) > last]
        return (min(answered) if answered else float("inf")) - moment


class Prober:
    """ICMP echo from a VM to dst every `interval` seconds, until stop()."""

    def __init__(self, lab: Lab, role: str, dst: str, interval: float, directory: Path):
        self.lab, self.role, self.dst, self.interval = lab, role, dst, interval
        self.out = directory / f"probe-{role}-{time.monotonic_ns()}.log"
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> "Prober":
        self.process = self.lab.popen(self.role, _python(_PROBER, self.dst, self.interval, self.out),
                                      stdout=subprocess.PIPE)
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != b"ready":
            raise RuntimeError("the prober did not start")
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is not None:
            self.lab.terminate(self.process)
            self.process = None

    def log(self) -> ProbeLog:
        result = ProbeLog()
        try:
            lines = self.out.read_text().splitlines()
        except OSError:
            return result
        for line in lines:
            words = line.split()
            if len(words) == 3:
                (result.sent if words[0] == "s" else result.replies)[int(words[1])] = float(words[2])
        return result


# -- ARP: who holds the VIP ---------------------------------------------------------------------

_ARP = r"""
import select, socket, struct, sys, time
ifname, source, target, rounds, wait = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
mac = bytes.fromhex(open(f"/sys/class/net/{ifname}/address").read().strip().replace(":", ""))
sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0806))
sock.bind((ifname, 0))
request = (b"\xff" * 6 + mac + b"\x08\x06" + struct.pack("!HHBBH", 1, 0x0800, 6, 4, 1)
           + mac + socket.inet_aton(source) + b"\x00" * 6 + socket.inet_aton(target))
owners = set()
for _ in range(rounds):
    sock.send(request)
    deadline = time.monotonic() + wait
    while (left := deadline - time.monotonic()) > 0:
        if not select.select([sock], [], [], left)[0]:
            break
        frame = sock.recv(2048)
        op, sha, spa = struct.unpack("!H", frame[20:22])[0], frame[22:28], frame[28:32]
        if op == 2 and spa == socket.inet_aton(target):
            owners.add(sha.hex(":"))
print(" ".join(sorted(owners)))
"""


def vip_owners(lab: Lab, role: str = "vm1", source: str = VM1_IP, target: str = VIP,
               rounds: int = 3, wait: float = 0.3) -> set[str]:
    """MAC addresses that answer ARP for `target` on the guest segment."""
    result = lab.run(role, [PYTHON, "-I", "-S", "-c", _ARP, "eth0", source, target, str(rounds), str(wait)],
                     timeout=rounds * wait + 10)
    return set(result.stdout.split())


def router_of_mac(mac: str, device: str = "eth0", macs: dict[str, dict[str, str]] = ROUTER_MACS) -> str | None:
    return next((role for role, nics in macs.items() if nics[device] == mac), None)


# -- a redundant VPC pair ---------------------------------------------------------------------------

def vpc_pair_pushes(router: int, tiers: int = 2, **cmdline_overrides: str) -> list[dict]:
    """What the management server sends each router of a redundant VPC pair at start."""
    from vragent.lab import sample_vpc

    return sample_vpc.pair_vpc(router, tiers, **cmdline_overrides)


VPC_PAIR_MACS = {"vr": VPC_ROUTER_MACS, "vr2": VPC_ROUTER2_MACS}


def vpc_vip_holder(lab: Lab, tier: int = 1) -> set[str | None]:
    """The routers that answer ARP for tier `tier`'s gateway VIP, asked from its VM."""
    t = VPC_TIERS[tier - 1]
    owners = vip_owners(lab, f"vm{tier}", t.vm_ip, t.router_ip)
    return {router_of_mac(mac, t.device, VPC_PAIR_MACS) for mac in owners}


def protocol_floor(advert_int: float, priority: int) -> float:
    """VRRP's own failover time after the primary falls silent (RFC 3768 Master_Down_Interval:
    3 x Advertisement_Interval + Skew_Time, skew = (256 - priority) / 256 x advert_int)."""
    return 3 * advert_int + (256 - priority) / 256 * advert_int
