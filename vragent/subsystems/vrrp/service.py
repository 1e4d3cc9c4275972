"""keepalived and conntrackd as services: how they start, and what a start must clear first
(the OS face of VRRP)."""

from __future__ import annotations

import signal

from vragent.paths import Paths
from vragent.shell import files as file_ops
from vragent.shell.services import ServiceSpec
from vragent.subsystems.vrrp.conntrackd import CONNTRACKD_NAME, ConntrackdPaths
from vragent.subsystems.vrrp.keepalived import KEEPALIVED_NAME, KeepalivedPaths


def _keepalived_argv(paths: Paths) -> list[str]:
    files = KeepalivedPaths.of(paths)
    # --vrrp: no health checker process; every pidfile under the root (two routers, one host).
    return ["keepalived", "--vrrp", f"--use-file={files.conf}", f"--pid={files.pid}", f"--vrrp_pid={files.vrrp_pid}",
            f"--checkers_pid={files.checkers_pid}", f"--bfd_pid={files.bfd_pid}"]


def _clear_leftovers(paths: Paths) -> None:
    """Before a start (the main process is known dead): keepalived refuses to start while a
    pidfile names a live process, and a zombie counts as live for it. An orphaned VRRP
    process still finishing its shutdown gets a moment, then SIGKILL."""
    import os
    import time

    from vragent.shell.services import _pid_alive

    files = KeepalivedPaths.of(paths)
    for pidfile in (files.vrrp_pid, files.checkers_pid, files.bfd_pid, files.pid):
        try:
            pid = int(pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pidfile.unlink(missing_ok=True)
            continue
        deadline = time.monotonic() + 2.0
        while _pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        pidfile.unlink(missing_ok=True)


KEEPALIVED = ServiceSpec(
    name=KEEPALIVED_NAME,
    argv=_keepalived_argv,
    pidfile=lambda paths: KeepalivedPaths.of(paths).pid,
    prestart=_clear_leftovers,
    reload_signal=signal.SIGHUP,
    stop_timeout=10.0,  # a graceful stop sends priority 0 so the peer takes over at once
)


def _conntrackd_argv(paths: Paths) -> list[str]:
    files = ConntrackdPaths.of(paths)
    # conntrackd writes no pidfile: run it in the foreground under start-stop-daemon, which
    # detaches it and records its pid.
    return ["start-stop-daemon", "--start", "--background", "--make-pidfile", "--pidfile", str(files.pid),
            "--exec", "/usr/sbin/conntrackd", "--", "-C", str(files.conf)]


def _clear_stale_lock(paths: Paths) -> None:
    # A killed conntrackd leaves its lock file, and a new one refuses to start while it exists.
    # The backend calls this only when no conntrackd of ours is running.
    file_ops.remove(ConntrackdPaths.of(paths).lock)


CONNTRACKD = ServiceSpec(
    name=CONNTRACKD_NAME,
    argv=_conntrackd_argv,
    pidfile=lambda paths: ConntrackdPaths.of(paths).pid,
    prestart=_clear_stale_lock,
)
