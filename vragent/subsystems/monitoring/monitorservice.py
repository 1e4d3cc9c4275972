"""`monitorservice` (monitor_service.json): the management server's health-monitoring settings.

A flat payload (cloudstack-vr.md §2.3, cloudstack-vr-wave2.md §3.2): `config` lists the
processes to watch as `[name]:processname=...:servicename=...:pidfile=...:` entries
joined by ',', then the health-check switches, intervals (minutes), excluded checks and
their settings. A push replaces the settings it names and keeps the others, as the
incumbent's bag merge does: the management server's periodic health-check refresh
(UpdateRouterHealthChecksConfigTask) sends no `config` (no service list), and the watched
services must survive it. vragent runs no checks; it renders the files the image's
monitor script reads (subsystems/monitoring/render.py).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from vragent.errors import ValidationError
from vragent.model import MonitoredService, Monitoring, RouterState
from vragent.fields import Fields, type_name

_NAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
_OPTION_KEY = re.compile(r"^[A-Za-z0-9_]{1,64}$")
_CHECK = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")


@dataclass(frozen=True)
class MonitoringChange:
    # Monitoring field name -> new value, for each key the push holds (absent keys are kept).
    updates: tuple[tuple[str, object], ...]
    path: str
    monitoring: Monitoring = field(default=None, compare=False)  # the settings as pushed (origins)


def parse_config(value: str, path: str, errors: list[ValidationError]) -> tuple[MonitoredService, ...]:
    services: dict[str, MonitoredService] = {}
    for index, entry in enumerate(value.split(",")):
        entry = entry.strip()
        if not entry:
            continue
        where = f"{path}[{index}]"
        head, _, rest = entry.partition(":")
        name = head[1:-1] if head.startswith("[") and head.endswith("]") else None
        if name is None or not _NAME.match(name):
            errors.append(ValidationError(where, f"{entry!r} does not start with a [service] name"))
            continue
        options = []
        for part in rest.split(":"):
            if not part:
                continue
            key, equals, text = part.partition("=")
            if not equals or not _OPTION_KEY.match(key) or not text.isprintable():
                errors.append(ValidationError(where, f"{part!r} in [{name}] is not a key=value setting"))
                break
            options.append((key, text))
        else:
            services[name] = MonitoredService(name, tuple(options))
    return tuple(services.values())


def _checks(fields: Fields, key: str) -> tuple[str, ...]:
    value = fields.raw(key, "")
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list):
        fields.error(key, f"expected a comma-separated string or a list, got {type_name(value)}")
        return ()
    checks = []
    for index, item in enumerate(items):
        text = item.strip() if isinstance(item, str) else None
        if text == "":
            continue
        if text is None or not _CHECK.match(text):
            fields.errors.append(ValidationError(f"{fields.at(key)}[{index}]", f"{item!r} is not a health check name"))
            continue
        checks.append(text)
    return tuple(dict.fromkeys(checks))


def parse(fields: Fields) -> MonitoringChange | None:
    errors_before = len(fields.errors)
    updates: dict[str, object] = {}
    if fields.has("config"):
        updates["services"] = parse_config(fields.string("config", "") or "", fields.at("config"), fields.errors)
    if fields.has("disable_monitoring"):
        updates["disabled"] = bool(fields.boolean("disable_monitoring", False))
    if fields.has("health_checks_enabled"):
        updates["health_checks_enabled"] = bool(fields.boolean("health_checks_enabled", False))
    for key, name in (("health_checks_basic_run_interval", "basic_interval"),
                      ("health_checks_advanced_run_interval", "advanced_interval")):
        if fields.has(key):
            updates[name] = fields.integer(key, None, lo=0, hi=1440)
    if fields.has("excluded_health_checks"):
        updates["excluded_checks"] = _checks(fields, "excluded_health_checks")
    if fields.has("health_checks_config"):
        settings = fields.raw("health_checks_config", {})
        if not isinstance(settings, dict):
            fields.error("health_checks_config", f"expected an object, got {type_name(settings)}")
            settings = {}
        updates["health_checks_config"] = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    if len(fields.errors) > errors_before:
        return None
    ordered = tuple(sorted(updates.items()))
    return MonitoringChange(ordered, fields.path, replace(Monitoring(), **updates))


def merge(state: RouterState, change: MonitoringChange) -> RouterState:
    return replace(state, monitoring=replace(state.monitoring or Monitoring(), **dict(change.updates)))


def origins(change: MonitoringChange) -> list[tuple[object, str]]:
    return [(change.monitoring, change.path)]
