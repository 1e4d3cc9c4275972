"""Service monitoring settings (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MonitoredService:
    """One `[name]:key=value:...` entry of a `monitorservice` push's `config`."""

    name: str
    options: tuple[tuple[str, str], ...]  # processname, servicename, pidfile, ... as sent


@dataclass(frozen=True)
class Monitoring:
    """The management server's health-monitoring settings (CloudStack `monitorservice`).

    vragent runs no checks itself; it keeps the settings and renders the files the image's
    own monitor script reads (subsystems/monitoring/render.py)."""

    services: tuple[MonitoredService, ...] = ()
    disabled: bool = False  # disable_monitoring
    health_checks_enabled: bool = False
    basic_interval: int | None = None  # minutes
    advanced_interval: int | None = None  # minutes
    excluded_checks: tuple[str, ...] = ()
    health_checks_config: str = "{}"  # a JSON object, opaque to vragent, canonical (sorted keys)
