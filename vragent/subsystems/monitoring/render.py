"""Health monitoring settings as the image's own monitor script reads them.

vragent runs no health checks and installs no cron job. It keeps what a `monitorservice`
push says and renders the two files the systemvm image's monitor script reads when the
management server asks for results on demand (`getRouterMonitorResults.sh true`,
cloudstack-vr-wave2.md §3.2): the watched processes in INI form, and the health-check
settings as JSON. Unlike the incumbent, a service no longer pushed leaves monitor.conf.
Without a `monitorservice` push neither file is touched.
"""

from __future__ import annotations

import json
from pathlib import Path

from vragent import templating
from vragent.model import RouterState
from vragent.paths import Paths

MONITOR_CONF = "etc/monitor.conf"
HEALTH_CHECKS_DATA = "root/health_checks_data.json"


def monitor_conf(state: RouterState) -> str:
    lines = [f"# {templating.GENERATED_HEADER}"]
    for service in state.monitoring.services:
        lines.append(f"[{service.name}]")
        lines += [f"{key}={value}" for key, value in service.options]
    return "\n".join(lines) + "\n"


def health_checks_data(state: RouterState) -> str:
    monitoring = state.monitoring
    data = {
        "disable_monitoring": monitoring.disabled,
        "health_checks_enabled": monitoring.health_checks_enabled,
        "health_checks_basic_run_interval": monitoring.basic_interval,
        "health_checks_advanced_run_interval": monitoring.advanced_interval,
        "excluded_health_checks": list(monitoring.excluded_checks),
        "health_checks_config": json.loads(monitoring.health_checks_config),
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def files(state: RouterState, paths: Paths) -> dict[Path, tuple[str | None, int]]:
    if state.monitoring is None:
        return {}
    return {paths.under(MONITOR_CONF): (monitor_conf(state), 0o644),
            paths.under(HEALTH_CHECKS_DATA): (health_checks_data(state), 0o644)}
