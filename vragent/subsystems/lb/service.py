"""HAProxy as a service: how it is started, and what happens around a reload.

Run directly (lab, tests) it is `haproxy -W -D -f <cfg> -p <pidfile>`: a daemonised
master whose pid is in the pidfile; reload is SIGUSR2 to that master. Under systemd
(systemd/vragent-haproxy.service) it is `haproxy -Ws` with ExecReload sending SIGUSR2.

Around every reload (and restart) vragent talks to the stats socket:
- before: `show servers state` is saved to the server-state file, which the new worker
  loads (`load-server-state-from-file global`), so servers keep their health and
  administrative state instead of starting over (CloudStack issue #6849);
- after: it waits until a *new* worker answers on the socket (only then is the new
  configuration serving) and the master takes signals again (a SIGUSR2 sent while it
  re-executes is lost). If no new worker answers in time (HAProxy's master keeps the
  old worker when the new one fails, e.g. an address it cannot bind), the step fails
  and the transaction rolls back.
"""

from __future__ import annotations

import logging
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

from vragent.shell import files
from vragent.paths import Paths
from vragent.subsystems.lb import render as layout
from vragent.shell.services import ServiceSpec

SOCKET_TIMEOUT = 2.0
READY_TIMEOUT = 10.0


def argv(paths: Paths) -> list[str]:
    return ["haproxy", "-W", "-D", "-f", str(layout.config_path(paths)), "-p", str(layout.pidfile(paths))]


SERVICE = ServiceSpec(name=layout.SERVICE_NAME, argv=argv, pidfile=layout.pidfile, reload_signal=signal.SIGUSR2,
                      hooks=lambda paths: Hooks(paths))


def runtime(path: Path, command: str, timeout: float = SOCKET_TIMEOUT) -> str:
    """One command on HAProxy's stats socket (non-interactive: it answers, then closes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(str(path))
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode(errors="replace")


def worker_pid(paths: Paths) -> int | None:
    """The pid of the worker answering on the stats socket, or None if none answers."""
    try:
        info = runtime(layout.stats_socket(paths), "show info", timeout=0.5)
    except OSError:
        return None
    for line in info.splitlines():
        if line.startswith("Pid:"):
            return int(line.split(":", 1)[1])
    return None


def master_pid(paths: Paths) -> int | None:
    try:
        return int(layout.pidfile(paths).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def master_ready(pid: int | None) -> bool:
    """True when the master would act on SIGUSR2 now.

    While the master re-executes itself for a reload, SIGUSR2 is first blocked, then
    ignored until its handlers are back (about 70 ms for a small file; longer for a large
    one), so a second reload signalled in that window is silently lost. Its signal masks
    in /proc tell when the window is over. No pid (or no /proc entry): nothing to wait for.
    """
    if pid is None:
        return True
    masks = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key in ("SigBlk", "SigIgn", "SigCgt"):
                    masks[key] = int(value.strip(), 16)
    except (OSError, ValueError):
        return True
    bit = 1 << (signal.SIGUSR2 - 1)
    return len(masks) == 3 and not masks["SigBlk"] & bit and not masks["SigIgn"] & bit and bool(masks["SigCgt"] & bit)


def _wait(condition, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.005)
    return True


def save_server_state(paths: Paths) -> bool:
    """Dump `show servers state` where the next worker loads it from."""
    try:
        state = runtime(layout.stats_socket(paths), "show servers state")
    except OSError:
        return False
    if not state.lstrip().startswith("1"):  # format version 1, then the header line
        return False
    files.atomic_write(layout.server_state_file(paths), state, 0o600)
    return True


@dataclass
class Hooks:
    """Called by the daemon step around each action (DaemonStep.hooks)."""

    paths: Paths
    ready_timeout: float = READY_TIMEOUT
    _old_worker: int | None = field(default=None, init=False, repr=False)

    def before(self, action: str) -> None:
        logger = logging.getLogger("vragent")
        if action in ("start", "restart", "reload"):
            layout.chroot_dir(self.paths).mkdir(parents=True, exist_ok=True)
        self._old_worker = None
        if action in ("reload", "restart"):
            # A reload still settling (another apply's, supervise's) would swallow this one.
            _wait(lambda: master_ready(master_pid(self.paths)), self.ready_timeout)
            self._old_worker = worker_pid(self.paths)
            if not save_server_state(self.paths):
                logger.warning("haproxy: server state not saved (stats socket not answering); "
                               "servers start over after the %s", action)

    def after(self, action: str) -> None:
        if action not in ("start", "restart", "reload"):
            return

        def serving() -> bool:
            pid = worker_pid(self.paths)
            return pid is not None and pid != self._old_worker

        if _wait(serving, self.ready_timeout):
            # Done once the master can take the next reload, too.
            if _wait(lambda: master_ready(master_pid(self.paths)), self.ready_timeout):
                return
            raise OSError(f"haproxy's master ({master_pid(self.paths)}) still does not take signals "
                          f"{self.ready_timeout:g} s after the {action}")
        if action == "reload" and self._old_worker is not None:
            raise OSError(f"haproxy did not start a worker with the new configuration within "
                          f"{self.ready_timeout:g} s; the old worker ({self._old_worker}) keeps serving")
        raise OSError(f"haproxy: no worker answers on {layout.stats_socket(self.paths)} "
                      f"{self.ready_timeout:g} s after {action}")
