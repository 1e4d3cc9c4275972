"""vragent's health checks, run by CloudStack's monitor script from /root/health_checks/.

CloudStack's `/root/monitorServices.py` runs every executable of `/root/health_checks/`
with `basic` or `advanced` and keeps what it prints and its exit code (0 SUCCESS, 1
FAILED, 2 WARNING, 3 UNKNOWN; nothing printed with 0: the check does not apply to that
run). The image's own checks stay where they read what they check (disk, memory, CPU,
gateways, versions; dhcp_check.py and dns_check.py read the incumbent's files, which
vragent renders: render/incumbent_files.py). These replace or add to them:

- `iptables_check.py` (advanced, replaces CloudStack's): each port forward the management
  server lists is DNAT'ed by the kernel's nat rules in vragent's layout (PREROUTING and
  OUTPUT jump to `vr-dnat`, which jumps per public IP to `vr-pf-<ip>`). CloudStack's looks
  for the incumbent's layout (every DNAT line directly in PREROUTING with `-d`), which
  vragent does not use, so it would fail on every healthy router.
- `vragent_dnsmasq_check.py` (advanced): dnsmasq runs and answers each VM's name with its
  address (a real DNS query): the running daemon, not its files.
- `vragent_data_server_check.py` (basic): the data server answers HTTP (80) and the
  password protocol (8080) on each address it serves.
- `vragent_haproxy_check.py` (advanced): with load balancers, HAProxy's master runs, a
  worker answers on its socket, and that worker runs the configuration on disk (it started
  after the file was written, or the file is the one vragent last loaded into it).

All read the router's files under the relocatable root (VRAGENT_ROOT), use the standard
library only, and never change anything.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import struct
import subprocess
import sys
from pathlib import Path

from vragent.paths import Paths

SUCCESS, FAILED, WARNING, UNKNOWN = 0, 1, 2, 3
HEALTH_CHECKS_DATA = "root/health_checks_data.json"
HAPROXY_LOADED = "run/vragent/haproxy.loaded"  # sha256 of the configuration vragent last loaded


class Result(Exception):
    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code, self.message = code, message


def health_data(paths: Paths, key: str) -> list[dict[str, str]] | None:
    """One `health_checks_config` entry as CloudStack's utility parses it: `k=v,k=v;...`."""
    try:
        data = json.loads(paths.under(HEALTH_CHECKS_DATA).read_text())
    except (OSError, ValueError):
        return None
    text = (data.get("health_checks_config") or {}).get(key)
    if not isinstance(text, str):
        return None
    entries = []
    for line in text.strip().split(";"):
        entry = {}
        for pair in line.split(","):
            key_value = pair.strip().split("=")
            if len(key_value) == 2:
                entry[key_value[0].strip()] = key_value[1].strip()
        if entry:
            entries.append(entry)
    return entries


def _pid_alive(pidfile: Path) -> int | None:
    try:
        pid = int(pidfile.read_text().split()[0])
        with open(f"/proc/{pid}/stat") as stat:
            if stat.read().rsplit(")", 1)[1].split()[0] == "Z":
                return None
    except (OSError, ValueError, IndexError):
        return None
    return pid


# -- iptables_check.py ------------------------------------------------------------------

def _ports(start: str, end: str, delimiter: str) -> str:
    return start if start == end else f"{start}{delimiter}{end}"


def nat_rules() -> list[str]:
    done = subprocess.run(["iptables-save", "-t", "nat"], capture_output=True, text=True)
    if done.returncode != 0:
        raise Result(FAILED, f"iptables-save failed: {done.stderr.strip()}")
    return done.stdout.splitlines()


def _dnat_to(rule: str) -> str | None:
    """A DNAT rule's destination without vragent's port-to-port offset (`/1020`)."""
    _, found, rest = rule.partition("--to-destination ")
    return rest.split()[0].split("/")[0] if found and rest else None


def iptables_check(paths: Paths, rules: list[str] | None = None) -> Result:
    forwards = health_data(paths, "portForwarding")
    if not forwards:
        return Result(SUCCESS, "No portforwarding rules provided to check, skipping")
    rules = nat_rules() if rules is None else rules
    missing = []
    for hook in ("PREROUTING", "OUTPUT"):
        if f"-A {hook} -j vr-dnat" not in rules:
            missing.append(f"{hook} does not jump to vr-dnat")
    for forward in forwards:
        try:
            public, internal = forward["sourceIp"], forward["destIp"]
            dport = _ports(forward["sourcePortStart"], forward["sourcePortEnd"], ":")
            target = f"{internal}:{_ports(forward['destPortStart'], forward['destPortEnd'], '-')}"
        except KeyError as exc:
            missing.append(f"port forward {forward} lacks {exc}")
            continue
        chain = f"vr-pf-{public}"
        jumped = f"-A vr-dnat -d {public}/32 -j {chain}" in rules
        dnat = any(rule.startswith(f"-A {chain} ") and f" --dport {dport} " in rule and _dnat_to(rule) == target
                   for rule in rules)
        if not (jumped and dnat):
            missing.append(f"{public}:{dport} -> {target}")
    if missing:
        return Result(FAILED, "Missing port forwarding rules in Iptables-\n " + "\n ".join(missing))
    return Result(SUCCESS, f"Found all entries (count {len(forwards)}) in iptables")


# -- vragent_dnsmasq_check.py -----------------------------------------------------------

def dns_query(server: str, name: str, timeout: float = 2.0) -> list[str]:
    """The A records `server` answers for `name` (a minimal stub resolver)."""
    ident = os.getpid() & 0xFFFF
    question = b"".join(bytes([len(label)]) + label.encode() for label in name.split(".")) + b"\0"
    packet = struct.pack("!HHHHHH", ident, 0x0100, 1, 0, 0, 0) + question + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(packet, (server, 53))
        reply = sock.recv(4096)
    _, flags, questions, answers = struct.unpack("!HHHH", reply[:8])
    if flags & 0x000F:
        return []  # NXDOMAIN, REFUSED, ...
    offset = 12
    for _ in range(questions):
        while reply[offset]:
            offset += reply[offset] + 1
        offset += 5
    found = []
    for _ in range(answers):
        if reply[offset] & 0xC0 == 0xC0:
            offset += 2
        else:
            while reply[offset]:
                offset += reply[offset] + 1
            offset += 1
        kind, _, _, length = struct.unpack("!HHIH", reply[offset:offset + 10])
        offset += 10
        if kind == 1 and length == 4:
            found.append(socket.inet_ntoa(reply[offset:offset + 4]))
        offset += length
    return found


def dnsmasq_check(paths: Paths) -> Result:
    if not paths.under("etc/vragent/dnsmasq/dnsmasq.conf").exists():
        return Result(SUCCESS, "")  # this router runs no dnsmasq
    if _pid_alive(paths.run_dir / "dnsmasq.pid") is None:
        return Result(FAILED, "dnsmasq is not running")
    vms = [vm for vm in health_data(paths, "virtualMachines") or [] if vm.get("dns") != "false"]
    wrong = []
    for vm in vms:
        try:
            answer = dns_query("127.0.0.1", vm["vmName"])
        except (OSError, IndexError, struct.error) as exc:
            return Result(FAILED, f"dnsmasq does not answer DNS on 127.0.0.1: {exc}")
        if vm["ip"] not in answer:
            wrong.append(f"{vm['vmName']} -> {','.join(answer) or 'no address'} (expected {vm['ip']})")
    if wrong:
        return Result(FAILED, "dnsmasq answers wrongly for VMs - " + ", ".join(wrong))
    return Result(SUCCESS, f"dnsmasq is running and answers for all {len(vms)} VMs")


# -- vragent_data_server_check.py -------------------------------------------------------

def _exchange(address: str, port: int, request: bytes, timeout: float = 2.0) -> bytes:
    with socket.create_connection((address, port), timeout=timeout) as sock:
        sock.sendall(request)
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(4096):
            chunks.append(chunk)
    return b"".join(chunks)


def data_server_check(paths: Paths) -> Result:
    try:
        config = json.loads(paths.under("etc/vragent/metadata/server.json").read_text())
    except (OSError, ValueError):
        return Result(SUCCESS, "")  # this router runs no data server
    broken = []
    for address in config.get("listen", []):
        try:
            reply = _exchange(address, int(config.get("metadata_port", 80)),
                              f"GET /latest/meta-data/ HTTP/1.0\r\nHost: {address}\r\n\r\n".encode())
            if not reply.startswith(b"HTTP/1."):
                broken.append(f"{address}:80 answers no HTTP")
            reply = _exchange(address, int(config.get("password_port", 8080)),
                              b"GET / HTTP/1.0\r\nDomU_Request: healthcheck\r\n\r\n")
            if b"bad_request" not in reply:
                broken.append(f"{address}:8080 does not speak the password protocol")
        except OSError as exc:
            broken.append(f"{address}: {exc}")
    if broken:
        return Result(FAILED, "The data server does not answer - " + ", ".join(broken))
    return Result(SUCCESS, f"The data server answers on {len(config.get('listen', []))} addresses")


# -- vragent_haproxy_check.py -----------------------------------------------------------

def _haproxy_worker(paths: Paths) -> int | None:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(2.0)
            sock.connect(str(paths.run_dir / "haproxy.sock"))
            sock.sendall(b"show info\n")
            sock.shutdown(socket.SHUT_WR)
            info = b""
            while chunk := sock.recv(65536):
                info += chunk
    except OSError:
        return None
    for line in info.decode(errors="replace").splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    return None


def _started_at(pid: int) -> float:
    """A process's start time, in seconds since the epoch."""
    with open(f"/proc/{pid}/stat") as stat:
        ticks = int(stat.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat") as stat:
        boot = next(int(line.split()[1]) for line in stat if line.startswith("btime "))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def haproxy_check(paths: Paths) -> Result:
    config = paths.under("etc/haproxy/haproxy.cfg")
    try:
        from vragent.pipeline import document as state_doc

        active = state_doc.load_trusted(paths.state.read_text(), False).load_balancing.active
    except OSError:
        active = False
    if not active:
        return Result(SUCCESS, "")  # no load balancer: vragent runs no HAProxy
    if _pid_alive(paths.run_dir / "haproxy.pid") is None:
        return Result(FAILED, "HAProxy is not running")
    worker = _haproxy_worker(paths)
    if worker is None:
        return Result(FAILED, "No HAProxy worker answers on its stats socket")
    try:
        text = config.read_bytes()
        written = config.stat().st_mtime
        started = _started_at(worker)
    except OSError as exc:
        return Result(FAILED, f"Cannot read HAProxy's configuration or worker: {exc}")
    try:
        loaded = paths.under(HAPROXY_LOADED).read_text().strip()
    except OSError:
        loaded = None
    if started + 1 < written and loaded != hashlib.sha256(text).hexdigest():
        return Result(FAILED, f"HAProxy serves a stale configuration: {config} changed after its worker "
                              f"({worker}) started and was never loaded")
    return Result(SUCCESS, f"HAProxy is running its current configuration (worker {worker})")


CHECKS = {
    # name: (check type it runs in, function)
    "iptables_check": ("advanced", iptables_check),
    "vragent_dnsmasq_check": ("advanced", dnsmasq_check),
    "vragent_data_server_check": ("basic", data_server_check),
    "vragent_haproxy_check": ("advanced", haproxy_check),
}


def main(name: str, argv: list[str]) -> int:
    """A check as monitorServices.py runs it: `NAME basic|advanced`; silent (and 0) in
    the other check type, as CloudStack's own checks are."""
    kind, check = CHECKS[name]
    if argv != [kind]:
        return SUCCESS
    try:
        result = check(Paths.from_root())
    except Result as raised:
        result = raised
    except Exception as exc:  # noqa: BLE001 - a check that breaks says so, and UNKNOWN
        result = Result(UNKNOWN, f"{name} could not run: {exc!r}")
    if result.message:
        print(result.message)
    return result.code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2:]))
