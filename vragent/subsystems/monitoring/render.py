"""Health monitoring: the files CloudStack's monitor script reads, and its schedule.

The management server asks for health-check results with `getRouterMonitorResults.sh
[true]`, which runs (fresh) or reads (periodic) `/root/monitorServices.py`: the services of
`/etc/monitor.conf` (basic), then every executable of `/root/health_checks/` (basic and
advanced), configured by `/root/health_checks_data.json`. vragent renders those inputs
from the `monitorservice` push, as the incumbent's CsMonitor does, with two differences
that keep the results true on a vragent router:

- monitor.conf names the daemons as vragent runs them: a service whose process vragent
  runs (dnsmasq, haproxy, the data server in place of apache2) gets vragent's unit
  (`vragent-<name>`), pidfile and process name, so a dead daemon is found and restarted
  by its real unit rather than by a masked one; a service vragent runs nothing for right
  now (HAProxy without a load balancer) is left out, as there is nothing to watch; other
  services (sshd) are kept as sent. With service monitoring turned off by the management
  server (`disable_monitoring` "false": Monitoring.disabled) no service is listed.
- `/etc/cron.d/process` holds the periodic runs (basic and advanced, every N minutes as
  pushed; the incumbent's defaults 3 and 0 = never when a push has no interval).

Without a `monitorservice` push none of these files is touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from vragent import templating
from vragent.model import MonitoredService, RouterState
from vragent.paths import Paths

MONITOR_CONF = "etc/monitor.conf"
HEALTH_CHECKS_DATA = "root/health_checks_data.json"
CRON_FILE = "etc/cron.d/process"
# The incumbent's defaults (CsMonitor): basic every 3 minutes, advanced never.
DEFAULT_BASIC_INTERVAL = 3
DEFAULT_ADVANCED_INTERVAL = 0
MONITOR_COMMAND = "cd /root && /usr/bin/python3 /root/monitorServices.py"


def _on_router(paths: Paths, path: Path) -> str:
    """A path as the router's own processes see it (the lab runs them with the root bound)."""
    return "/" + str(path.relative_to(paths.root)) if path.is_relative_to(paths.root) else str(path)


def _vragent_daemons(state: RouterState, paths: Paths) -> dict[str, tuple[str, str, str]]:
    """processname the management server names -> (process, unit, pidfile) vragent runs now."""
    from vragent.subsystems.dhcp.render import DnsmasqPaths
    from vragent.subsystems.guestdata.render import MetadataPaths
    from vragent.subsystems.lb.render import pidfile as haproxy_pidfile

    daemons = {}
    if state.serves_guests:
        daemons["dnsmasq"] = ("dnsmasq", "vragent-dnsmasq", _on_router(paths, DnsmasqPaths.of(paths).pid))
        # The data server replaces the incumbent's apache2 (metadata, user-data) and password
        # server: a Python process, started as python3 (vragent-metadata.service,
        # guestdata/service.py), which is the name pidof finds it by.
        daemons["apache2"] = ("python3", "vragent-metadata", _on_router(paths, MetadataPaths.of(paths).pid))
    if state.load_balancing.active:
        daemons["haproxy"] = ("haproxy", "vragent-haproxy", _on_router(paths, haproxy_pidfile(paths)))
    return daemons


def monitored_services(state: RouterState, paths: Paths) -> list[MonitoredService]:
    if state.monitoring.disabled:
        return []
    # The daemons vragent replaces, whichever of the incumbent's names the push used.
    replaced = {"dnsmasq", "haproxy", "apache2", "httpd"}
    daemons = _vragent_daemons(state, paths)
    services = []
    for service in state.monitoring.services:
        options = dict(service.options)
        process = options.get("processname", "")
        if process not in replaced:
            services.append(service)
            continue
        ours = daemons.get("apache2" if process == "httpd" else process)
        if ours is None:
            continue  # vragent runs nothing of the kind now: nothing to watch or restart
        options.update(processname=ours[0], servicename=ours[1], pidfile=ours[2])
        services.append(MonitoredService(service.name, tuple(options.items())))
    return services


def monitor_conf(state: RouterState, paths: Paths) -> str:
    lines = [f"# {templating.GENERATED_HEADER}"]
    for service in monitored_services(state, paths):
        lines.append(f"[{service.name}]")
        lines += [f"{key}={value}" for key, value in service.options]
    return "\n".join(lines) + "\n"


def intervals(state: RouterState) -> tuple[int, int]:
    monitoring = state.monitoring
    basic = DEFAULT_BASIC_INTERVAL if monitoring.basic_interval is None else monitoring.basic_interval
    advanced = DEFAULT_ADVANCED_INTERVAL if monitoring.advanced_interval is None else monitoring.advanced_interval
    return basic, advanced


def health_checks_data(state: RouterState) -> str:
    monitoring = state.monitoring
    basic, advanced = intervals(state)
    data = {
        "disable_monitoring": monitoring.disabled,
        "health_checks_enabled": monitoring.health_checks_enabled,
        "health_checks_basic_run_interval": basic,
        "health_checks_advanced_run_interval": advanced,
        "excluded_health_checks": list(monitoring.excluded_checks),
        "health_checks_config": json.loads(monitoring.health_checks_config),
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def _cron_schedule(minutes: int) -> str:
    if minutes < 60:
        return f"*/{minutes} * * * *"
    if minutes % 60 == 0 and minutes // 60 < 24:
        return f"0 */{minutes // 60} * * *"
    return "0 0 * * *"  # a day or an interval cron cannot express: once a day


def cron_file(state: RouterState) -> str:
    basic, advanced = intervals(state)
    lines = [f"# {templating.GENERATED_HEADER}", "SHELL=/bin/bash",
             "PATH=/usr/local/sbin:/usr/local/bin:/sbin:/bin:/usr/sbin:/usr/bin"]
    for kind, minutes in (("basic", basic), ("advanced", advanced)):
        if minutes > 0:
            lines.append(f"{_cron_schedule(minutes)} root {MONITOR_COMMAND} {kind} >/dev/null 2>&1")
    return "\n".join(lines) + "\n"


def files(state: RouterState, paths: Paths) -> dict[Path, tuple[str | None, int]]:
    if state.monitoring is None:
        return {}
    return {paths.under(MONITOR_CONF): (monitor_conf(state, paths), 0o644),
            paths.under(HEALTH_CHECKS_DATA): (health_checks_data(state), 0o644),
            paths.under(CRON_FILE): (cron_file(state), 0o644)}
