"""radvd as a service (the OS face of IPv6 router advertisements)."""

from __future__ import annotations

import signal

from vragent.shell.services import ServiceSpec
from vragent.subsystems.ipv6.render import SERVICE_NAME, conf_path, pid_path

SERVICE = ServiceSpec(
    name=SERVICE_NAME,
    # radvd daemonises itself and writes the pidfile; logs go to syslog.
    argv=lambda paths: ["radvd", f"--config={conf_path(paths)}", f"--pidfile={pid_path(paths)}"],
    pidfile=pid_path,
    reload_signal=signal.SIGHUP,
)
