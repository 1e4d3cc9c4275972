"""Router advertisements for a dual-stack router's guest network (radvd).

Guests configure themselves by SLAAC from the advertised /64 (on-link and autonomous
flags), take the router (its link-local address) as their default gateway and learn DNS
from RDNSS (RFC 8106): the router's guest address, where dnsmasq answers, or the
cmdline's `ip6dns1`/`ip6dns2` when the network uses external DNS (`useextdns`), as
dnsmasq does for IPv4. No DHCPv6: the incumbent's guests use SLAAC too.

radvd re-reads its configuration on SIGHUP (radvd(8)), so every change is a reload;
each candidate passes `radvd --configtest` before it replaces the live file. On a
redundant pair only the PRIMARY advertises (redundancy.PRIMARY_ONLY).
"""

from __future__ import annotations

from pathlib import Path

from vragent import templating
from vragent.model import GUEST_DEVICE, RouterState
from vragent.paths import Paths

CONF = "etc/vragent/radvd.conf"
# Advertisement interval bounds in seconds; guests asking (RS) get an answer at once.
MIN_INTERVAL, MAX_INTERVAL = 5, 15
# RFC 8106 5.1: between MaxRtrAdvInterval and 2 x MaxRtrAdvInterval.
RDNSS_LIFETIME = 2 * MAX_INTERVAL


def conf_path(paths: Paths) -> Path:
    return paths.under(CONF)


def pid_path(paths: Paths) -> Path:
    return paths.run_dir / "radvd.pid"


SERVICE_NAME = "radvd"


def enabled(state: RouterState) -> bool:
    return state.ipv6 is not None and state.router_type == "router"


def dns_servers(state: RouterState) -> list[str]:
    ipv6 = state.ipv6
    if state.config.get("useextdns", "false").lower() == "true" and ipv6.dns:
        return [str(d) for d in ipv6.dns]
    return [str(ipv6.gateway)]


def config_text(state: RouterState) -> str:
    ipv6 = state.ipv6
    return templating.render("radvd.conf.j2", interface=GUEST_DEVICE, prefix=str(ipv6.guest_network),
                             min_interval=MIN_INTERVAL, max_interval=MAX_INTERVAL,
                             dns=dns_servers(state), dns_lifetime=RDNSS_LIFETIME)


def daemon(state: RouterState, paths: Paths):
    from vragent.desired import DaemonDesired

    on = enabled(state)
    conf = conf_path(paths)
    return DaemonDesired(
        service=SERVICE_NAME,
        enabled=on,
        files={conf: (config_text(state) if on else None, 0o644)},
        checker=lambda candidates: ["radvd", "--configtest", f"--config={candidates.get(conf, conf)}"],
    )
