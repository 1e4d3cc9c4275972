"""The `monitoring` section of the state document (monitor_service.json's settings)."""

from __future__ import annotations

import json

from vragent.errors import ValidationError
from vragent.fields import Fields, type_name
from vragent.model import MonitoredService, Monitoring
from vragent.subsystems.monitoring.monitorservice import parse_config

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

MONITORING = "monitoring"


def to_document(monitoring: Monitoring | None) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if monitoring is not None:
        doc[MONITORING] = {
            "services": [{"name": s.name, "options": dict(s.options)} for s in monitoring.services],
            "disabled": monitoring.disabled,
            "health_checks_enabled": monitoring.health_checks_enabled,
            "basic_interval": monitoring.basic_interval,
            "advanced_interval": monitoring.advanced_interval,
            "excluded_checks": list(monitoring.excluded_checks),
            "health_checks_config": json.loads(monitoring.health_checks_config),
        }
    return doc


def _canonical(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True, separators=(",", ":"))


def load_trusted(data: dict) -> Monitoring | None:
    m = data.get(MONITORING)
    return None if m is None else Monitoring(
        tuple(MonitoredService(s["name"], tuple(s.get("options", {}).items())) for s in m.get("services", ())),
        m.get("disabled", False), m.get("health_checks_enabled", False), m.get("basic_interval"),
        m.get("advanced_interval"), tuple(m.get("excluded_checks", ())),
        _canonical(m.get("health_checks_config", {})))


def from_document(doc: Fields, errors: list[ValidationError]) -> Monitoring | None:
    raw = doc.raw(MONITORING, None)
    return None if raw is None else _monitoring(Fields(raw, doc.at(MONITORING), errors), errors)


def _monitoring(item: Fields, errors: list[ValidationError]) -> Monitoring | None:
    services = []
    for index, raw in enumerate(item.list("services", []) or []):
        entry = Fields(raw, f"{item.at('services')}[{index}]", errors)
        name, options = entry.string("name"), entry.raw("options", {})
        if not isinstance(options, dict) or not all(isinstance(v, str) for v in options.values()):
            entry.error("options", "expected an object of strings")
            continue
        if name is None:
            continue
        # The same rules as the wire form: the entry as the management server would send it.
        line = f"[{name}]:" + "".join(f"{k}={v}:" for k, v in options.items())
        services += parse_config(line, entry.path, errors)
    excluded = item.list("excluded_checks", []) or []
    settings = item.raw("health_checks_config", {})
    if not isinstance(settings, dict):
        item.error("health_checks_config", f"expected an object, got {type_name(settings)}")
        settings = {}
    return Monitoring(tuple(services), bool(item.boolean("disabled", False)),
                      bool(item.boolean("health_checks_enabled", False)),
                      item.integer("basic_interval", None, lo=0, hi=1440),
                      item.integer("advanced_interval", None, lo=0, hi=1440),
                      tuple(str(x) for x in excluded), _canonical(settings))
