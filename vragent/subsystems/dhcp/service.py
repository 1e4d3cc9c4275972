"""dnsmasq as a service: how it is started and signalled (the OS face of DHCP/DNS)."""

from __future__ import annotations

import signal

from vragent.shell.services import ServiceSpec
from vragent.subsystems.dhcp.render import SERVICE_NAME, DnsmasqPaths

SERVICE = ServiceSpec(
    name=SERVICE_NAME,
    argv=lambda paths: ["dnsmasq", f"--conf-file={DnsmasqPaths.of(paths).conf}",
                        f"--pid-file={DnsmasqPaths.of(paths).pid}"],
    pidfile=lambda paths: DnsmasqPaths.of(paths).pid,
    reload_signal=signal.SIGHUP,
)
