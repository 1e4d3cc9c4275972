"""Real traffic between lab machines, with bounded timeouts and no shell.

The helpers run tiny Python programs inside the namespaces with the system interpreter,
so the lab needs no ping, netcat or socat: the machine may lack them (Debian's slim
images have no ping), and their exit codes and output differ between versions.
"""

from __future__ import annotations

import os
import select
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from vragent.lab.topology import Lab, LabCommandError

# The caller may be a venv's python; the in-namespace helpers need only the stdlib.
PYTHON = "/usr/bin/python3"
READY_TIMEOUT = 5.0
PROBE_LINE = b"probe\n"


def _python(script: str, *args: object) -> list[str]:
    # -I: ignore PYTHON* variables and user site; -S: skip site, starts in ~10 ms.
    return [PYTHON, "-I", "-S", "-c", script, *(str(arg) for arg in args)]


# --- ping ---

# ICMP echo over a raw socket (root in the namespace). Sends one request every 0.2 s
# until `count` distinct replies arrived or the deadline passed, like `ping -c N -w T`.
# The part every in-namespace ICMP echo helper shares: the Internet checksum and a raw socket.
ICMP_ECHO_SOCKET = r"""
def checksum(data):
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    total = (total >> 16) + (total & 0xFFFF)
    return ~(total + (total >> 16)) & 0xFFFF

ident = os.getpid() & 0xFFFF
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
"""

_PING = r"""
import os, select, socket, struct, sys, time
dst, count, timeout, source = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
""" + ICMP_ECHO_SOCKET + r"""if source:
    sock.bind((source, 0))  # an address the namespace lacks raises: a test bug, not "no reply"
deadline = time.monotonic() + timeout
replies, seq, next_send = set(), 0, 0.0
while len(replies) < count and time.monotonic() < deadline:
    if time.monotonic() >= next_send:
        seq += 1
        payload = b"vragent-lab-" + str(seq).encode().rjust(4, b"0")
        header = struct.pack("!BBHHH", 8, 0, 0, ident, seq)
        packet = struct.pack("!BBHHH", 8, 0, checksum(header + payload), ident, seq) + payload
        try:
            sock.sendto(packet, (dst, 0))
        except OSError:
            pass  # no route yet: keep trying until the deadline
        next_send = time.monotonic() + 0.2
    wait = max(0.0, min(next_send, deadline) - time.monotonic())
    if select.select([sock], [], [], wait)[0]:
        data, (sender, _) = sock.recvfrom(4096)
        offset = (data[0] & 0x0F) * 4
        kind, _, _, rid, rseq = struct.unpack("!BBHHH", data[offset:offset + 8])
        if kind == 0 and rid == ident and sender == dst:
            replies.add(rseq)
print(len(replies))
sys.exit(0 if len(replies) >= count else 3)
"""
# Distinct from 1, which is what a crashing helper (a traceback) exits with.
_NO_REPLY_EXIT = 3


def ping(lab: Lab, role: str, dst: str, count: int = 1, timeout: float = 2, source: str | None = None) -> bool:
    """True if `count` ICMP echo replies from dst reach role within timeout seconds."""
    argv = _python(_PING, dst, count, timeout, source or "")
    result = lab.run(role, argv, check=False, timeout=timeout + 5)
    if result.returncode not in (0, _NO_REPLY_EXIT):
        raise LabCommandError(result.returncode, lab.command(role, argv), result.stdout, result.stderr)
    return result.returncode == 0


# --- TCP/UDP: a server that tells each client which address it saw ---

# For every TCP connection: log "tcp <peer>", send "<peer>\n", then echo until EOF (so a
# long-lived client can prove its flow still works). Every UDP datagram: log, reply.
_PEER_SERVER = r"""
import select, socket, sys, threading
bind, port, log_path, with_udp = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4] == "1"
log, lock = open(log_path, "a", buffering=1), threading.Lock()

def record(proto, ip):
    with lock:
        log.write(f"{proto} {ip}\n")

def serve(conn, peer):
    try:
        with conn:
            record("tcp", peer[0])
            conn.sendall(f"{peer[0]}\n".encode())
            while data := conn.recv(4096):
                conn.sendall(data)
    except OSError:
        pass

family = socket.AF_INET6 if ":" in bind else socket.AF_INET  # bind "::" serves IPv6
tcp = socket.socket(family, socket.SOCK_STREAM)
tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
tcp.bind((bind, port))
tcp.listen(128)
port = tcp.getsockname()[1]
sockets = [tcp]
if with_udp:
    udp = socket.socket(family, socket.SOCK_DGRAM)
    udp.bind((bind, port))
    sockets.append(udp)
print("listening", port, flush=True)
while True:
    for ready in select.select(sockets, [], [])[0]:
        if ready is tcp:
            conn, peer = tcp.accept()
            threading.Thread(target=serve, args=(conn, peer), daemon=True).start()
        else:
            data, peer = udp.recvfrom(4096)
            record("udp", peer[0])
            udp.sendto(f"{peer[0]}\n".encode(), peer)
"""


class _LineReader:
    """Reads whole lines from a pipe with a deadline (readline() alone could block forever)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self._process = process
        self._fd = process.stdout.fileno()
        self._buffer = b""

    def readline(self, timeout: float) -> str | None:
        """The next line without its newline, or None on timeout or end of stream."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._fd], [], [], remaining)[0]:
                return None
            chunk = os.read(self._fd, 4096)
            if not chunk:
                return None
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()


class TcpServer:
    """A TCP (and optionally UDP) listener in a lab namespace that reports client addresses.

    Each client gets one line back: the source address the server saw. peers() lists them
    all, in order, which proves source NAT and static NAT from the receiving side.
    Use port=0 to let the kernel pick; the chosen port is in .port once started.
    """

    def __init__(self, lab: Lab, role: str, port: int, bind: str = "0.0.0.0", udp: bool = False) -> None:
        self.lab, self.role, self.port, self.bind, self.udp = lab, role, port, bind, udp
        self._process: subprocess.Popen[bytes] | None = None
        self._workdir: Path | None = None

    def __enter__(self) -> TcpServer:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> TcpServer:
        """Start the server and return once it is listening (or raise with its stderr)."""
        self._workdir = Path(tempfile.mkdtemp(prefix="vrlab-server-"))
        log_path, err_path = self._workdir / "peers.log", self._workdir / "stderr"
        log_path.touch()
        with err_path.open("wb") as stderr:
            self._process = self.lab.popen(
                self.role, _python(_PEER_SERVER, self.bind, self.port, log_path, int(self.udp)),
                stdout=subprocess.PIPE, stderr=stderr)
        ready = _LineReader(self._process).readline(READY_TIMEOUT)
        if not ready or not ready.startswith("listening "):
            self.stop()
            raise RuntimeError(f"server on {self.role}:{self.port} did not start: "
                               f"{err_path.read_text() if err_path.exists() else ready!r}")
        self.port = int(ready.split()[1])
        return self

    def peers(self, proto: str = "tcp") -> list[str]:
        """Source addresses of every client seen so far, oldest first."""
        if self._workdir is None:
            return []
        lines = (self._workdir / "peers.log").read_text().splitlines()
        return [line.split()[1] for line in lines if line.split()[0] == proto]

    def stop(self) -> None:
        if self._process is not None:
            self.lab.terminate(self._process)
            self._process = None
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None


@dataclass(frozen=True)
class ConnectResult:
    """ok: the connection (or UDP exchange) worked. peer_seen: the first line the server
    sent back, which for TcpServer is the client address it saw. error: why not ok."""

    ok: bool
    peer_seen: str | None
    error: str | None = None


_TCP_CLIENT = r"""
import socket, sys
dst, port, timeout, source = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
try:
    with socket.create_connection((dst, port), timeout=timeout,
                                  source_address=(source, 0) if source else None) as sock:
        line = sock.makefile("rb").readline().decode(errors="replace").strip()
    print("ok", line)
except OSError as error:
    print("error", type(error).__name__, error)
    sys.exit(1)
"""

# UDP is lossy while ARP resolves, so resend every 0.3 s until a reply or the deadline.
_UDP_CLIENT = r"""
import select, socket, sys, time
dst, port, timeout, source = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
if source:
    sock.bind((source, 0))
deadline = time.monotonic() + timeout
try:
    while time.monotonic() < deadline:
        sock.sendto(b"probe\n", (dst, port))
        if select.select([sock], [], [], min(0.3, max(0.0, deadline - time.monotonic())))[0]:
            print("ok", sock.recv(4096).decode(errors="replace").strip())
            sys.exit(0)
    print("error timeout")
except OSError as error:
    print("error", type(error).__name__, error)
sys.exit(1)
"""


def _client_result(result: subprocess.CompletedProcess[str]) -> ConnectResult:
    words = result.stdout.strip().split(" ", 1)
    if words[0] not in ("ok", "error"):  # the helper itself crashed: never report that as a result
        raise LabCommandError(result.returncode, result.args, result.stdout, result.stderr)
    if result.returncode == 0 and words[0] == "ok":
        return ConnectResult(True, words[1] if len(words) > 1 and words[1] else None)
    detail = words[1] if len(words) > 1 else (result.stderr.strip() or f"exit {result.returncode}")
    return ConnectResult(False, None, detail)


def tcp_connect(lab: Lab, role: str, dst: str, port: int, timeout: float = 2.0,
                source: str | None = None) -> ConnectResult:
    """Connect from role to dst:port (optionally from a given source address) and read one line."""
    # Connect and read are each bounded by timeout; the outer bound only guards the helper.
    argv = _python(_TCP_CLIENT, dst, port, timeout, source or "")
    return _client_result(lab.run(role, argv, check=False, timeout=2 * timeout + 5))


def udp_probe(lab: Lab, role: str, dst: str, port: int, timeout: float = 2.0,
              source: str | None = None) -> ConnectResult:
    """Send a datagram from role to dst:port and wait for one reply (TcpServer(udp=True) answers)."""
    argv = _python(_UDP_CLIENT, dst, port, timeout, source or "")
    return _client_result(lab.run(role, argv, check=False, timeout=timeout + 5))


# --- a connection that stays open ---

# Connects, prints "connected <first line>", then for each line on stdin sends a probe
# and prints "ok" when it is echoed back, or "error ..." (after which the flow is dead).
_HELD_CLIENT = r"""
import socket, sys
dst, port, timeout, source = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
try:
    sock = socket.create_connection((dst, port), timeout=timeout,
                                    source_address=(source, 0) if source else None)
    replies = sock.makefile("rb")
    print("connected", replies.readline().decode(errors="replace").strip(), flush=True)
except OSError as error:
    print("error", type(error).__name__, error, flush=True)
    sys.exit(1)
broken = None
for _ in sys.stdin:
    if broken is None:
        try:
            sock.sendall(b"probe\n")
            if replies.readline() != b"probe\n":
                broken = "closed by peer"
        except OSError as error:
            broken = f"{type(error).__name__} {error}"
    print("ok" if broken is None else f"error {broken}", flush=True)
"""


class HeldConnection:
    """One TCP connection to a TcpServer kept open, to prove an established flow survives
    a reload, a rule change or a failover. alive() sends a probe over the same socket."""

    def __init__(self, lab: Lab, role: str, dst: str, port: int, timeout: float = 2.0,
                 source: str | None = None) -> None:
        self.lab, self.role, self.dst, self.port = lab, role, dst, port
        self.timeout, self.source = timeout, source
        self.peer_seen: str | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: _LineReader | None = None

    def __enter__(self) -> HeldConnection:
        self.open()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def open(self) -> HeldConnection:
        """Connect; raise ConnectionError if the connection cannot be made."""
        self._process = self.lab.popen(
            self.role, _python(_HELD_CLIENT, self.dst, self.port, self.timeout, self.source or ""),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._reader = _LineReader(self._process)
        line = self._reader.readline(2 * self.timeout + READY_TIMEOUT) or "error no answer"
        if not line.startswith("connected"):
            self.close()
            raise ConnectionError(f"{self.role} -> {self.dst}:{self.port}: {line}")
        self.peer_seen = line.partition(" ")[2] or None
        return self

    def alive(self) -> bool:
        """True if a probe sent over the held connection comes back within the timeout."""
        if self._process is None or self._reader is None or self._process.poll() is not None:
            return False
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(b"\n")
            self._process.stdin.flush()
        except BrokenPipeError:
            return False
        return self._reader.readline(self.timeout + READY_TIMEOUT) == "ok"

    def close(self) -> None:
        if self._process is not None:
            self.lab.terminate(self._process)
            self._process = None
