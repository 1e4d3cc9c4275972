"""Daemon control: a systemd backend on a real VR, a direct (pidfile) backend elsewhere.

Subsystems describe their daemon once (`ServiceSpec`); the backend decides how it is
started, signalled and supervised. On a VR, systemd units (systemd/vragent-*.service)
restart a dead daemon; in the lab and in tests, where systemd is not PID 1, daemons
run directly with pidfiles under the relocatable root and `vragent supervise`
restarts them.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable

from vragent.shell import runner
from vragent.paths import Paths


@dataclass(frozen=True)
class ServiceSpec:
    name: str  # e.g. "dnsmasq"; the systemd unit is vragent-<name>.service
    # argv that starts the daemon in the foreground-less way the direct backend expects
    # (it must daemonise itself and write `pidfile`).
    argv: Callable[[Paths], list[str]]
    pidfile: Callable[[Paths], Path]
    reload_signal: int = signal.SIGHUP
    stop_timeout: float = 5.0
    # Run by the direct backend just before a start, e.g. to clear a stale lock file left by
    # a killed daemon (a systemd unit does the same with ExecStartPre=).
    prestart: Callable[[Paths], None] | None = None
    # Optional: paths -> an object with before(action) and after(action), called around each
    # start/reload/restart/stop (HAProxy saves server state, then waits for its new worker).
    hooks: Callable[[Paths], object] | None = None


@dataclass(frozen=True)
class Runtime:
    """How the daemons of a desired router are run: the backend and every service's spec by
    name (desired.DaemonDesired names its service; the engine binds the names here)."""

    backend: "Backend"
    specs: dict[str, ServiceSpec]
    paths: Paths

    def spec(self, name: str) -> ServiceSpec:
        return self.specs[name]

    def owed_record(self, name: str):
        from vragent.shell import owed

        return owed.record_path(self.paths.run_dir, name)

    def hooks(self, name: str):
        spec = self.specs[name]
        return spec.hooks(self.paths) if spec.hooks is not None else None


class Backend:
    def running(self, spec: ServiceSpec) -> int | None:
        raise NotImplementedError

    def running_all(self, specs) -> dict[str, int | None]:
        """Service name -> its pid (None: not running), for every spec at once."""
        return {spec.name: self.running(spec) for spec in specs}

    def start(self, spec: ServiceSpec) -> None:
        raise NotImplementedError

    def stop(self, spec: ServiceSpec) -> None:
        raise NotImplementedError

    def reload(self, spec: ServiceSpec) -> None:
        raise NotImplementedError

    def restart(self, spec: ServiceSpec) -> None:
        self.stop(spec)
        self.start(spec)

    def perform(self, spec: ServiceSpec, action: str) -> None:
        getattr(self, action)(spec)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie still answers kill(0); it is not running.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@dataclass
class DirectBackend(Backend):
    paths: Paths

    def running(self, spec: ServiceSpec) -> int | None:
        try:
            pid = int(spec.pidfile(self.paths).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None
        return pid if _pid_alive(pid) else None

    def start(self, spec: ServiceSpec) -> None:
        if self.running(spec):
            return
        pidfile = spec.pidfile(self.paths)
        pidfile.parent.mkdir(parents=True, exist_ok=True)
        pidfile.unlink(missing_ok=True)
        if spec.prestart is not None:
            spec.prestart(self.paths)
        runner.run(spec.argv(self.paths), timeout=30)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self.running(spec):
                return
            time.sleep(0.02)
        raise OSError(f"{spec.name} did not start (no live pid in {pidfile})")

    def stop(self, spec: ServiceSpec) -> None:
        pid = self.running(spec)
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + spec.stop_timeout
        while time.monotonic() < deadline and _pid_alive(pid):
            time.sleep(0.02)
        if _pid_alive(pid):
            os.kill(pid, signal.SIGKILL)
        spec.pidfile(self.paths).unlink(missing_ok=True)

    def reload(self, spec: ServiceSpec) -> None:
        pid = self.running(spec)
        if pid is None:
            self.start(spec)
            return
        os.kill(pid, spec.reload_signal)


@dataclass
class SystemdBackend(Backend):
    def unit(self, spec: ServiceSpec) -> str:
        return f"vragent-{spec.name}.service"

    def running(self, spec: ServiceSpec) -> int | None:
        out = runner.run(["systemctl", "show", "-p", "MainPID", "--value", self.unit(spec)], check=False).stdout
        pid = int(out.strip() or 0)
        return pid or None

    def running_all(self, specs) -> dict[str, int | None]:
        # One systemctl for every daemon, not one each: an apply observes all of them twice
        # (before the plan and to verify), and each systemctl is a fork and a D-Bus round trip.
        specs = list(specs)
        if not specs:
            return {}
        out = runner.run(["systemctl", "show", "-p", "Id", "-p", "MainPID", *map(self.unit, specs)],
                         check=False).stdout
        pids: dict[str, int] = {}
        for block in out.split("\n\n"):
            values = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
            if "Id" in values:
                pids[values["Id"]] = int(values.get("MainPID") or 0)
        return {spec.name: pids.get(self.unit(spec)) or None for spec in specs}

    def start(self, spec: ServiceSpec) -> None:
        runner.run(["systemctl", "start", self.unit(spec)])

    def stop(self, spec: ServiceSpec) -> None:
        runner.run(["systemctl", "stop", self.unit(spec)])

    def reload(self, spec: ServiceSpec) -> None:
        # Units define ExecReload as the daemon's cheap reload (SIGHUP, or HAProxy's USR2).
        runner.run(["systemctl", "reload-or-restart", self.unit(spec)])

    def restart(self, spec: ServiceSpec) -> None:
        runner.run(["systemctl", "restart", self.unit(spec)])


def backend(paths: Paths) -> Backend:
    choice = os.environ.get("VRAGENT_SERVICES")
    if choice == "systemd" or (choice is None and paths.root == Path("/") and Path("/run/systemd/system").is_dir()):
        return SystemdBackend()
    return DirectBackend(paths)
