"""Render a whole router from its pushes, as plain data a golden file can hold (see
test_router_golden.py). Only this module knows which internals make up "the whole router"."""

from __future__ import annotations

import sys
from pathlib import Path

from vragent import engine
from vragent.pipeline import document as state_doc
from vragent.errors import InvalidInput
from vragent.model import RouterState
from vragent.desired import Observed, ObservedTable
from vragent.paths import Paths
from vragent.pipeline.plan import build
from vragent.subsystems.dhcp import render as dnsmasq
from vragent.subsystems.guestdata import render as metadata
from vragent.pipeline import netfilter
from vragent.subsystems.vpn import render as vpn
from vragent.pipeline.intake import Document, merge_documents
from vragent.values import Link


def render_router(pushes: list, root: Path) -> dict:
    """Everything the agent makes of `pushes` on an empty router whose root is `root`
    (paths in the output are shown under "/", as on a VR)."""
    try:
        state = merge_documents(RouterState(), [Document(name, payload) for name, payload in pushes])
    except InvalidInput as refused:
        return {"errors": [{"path": e.path, "message": e.message} for e in refused.errors]}
    paths = Paths.from_root(root)
    desired = engine.render(state, paths)

    def shown(text: str) -> str:
        # As on a VR: paths under "/", and the agent's interpreter (keepalived's notify wrapper
        # names it) the system's, whichever venv runs the tests.
        return text.replace(f"{root}/", "/").replace(str(root), "/").replace(sys.executable, "/usr/bin/python3")

    def where(path) -> str:
        return "/" + str(Path(path).relative_to(root))

    def file_entry(content: str | None, mode: int):
        return None if content is None else {"mode": f"{mode:04o}", "lines": shown(content).splitlines()}

    links = desired.links
    rendered: dict = {
        "router_type": state.router_type,
        "tables": {key: netfilter.render_restore({key: spec}, (key,)).splitlines()
                   for key, spec in desired.tables.items()},
        "sysctls": dict(desired.sysctls),
        "links": {
            "addresses": {device: list(map(str, interfaces)) for device, interfaces in links.addresses.items()},
            "default_route": None if links.default_route is None else list(map(str, links.default_route)),
            "default_route6": None if links.default_route6 is None else list(map(str, links.default_route6)),
            "mtu": dict(links.mtu),
            "public": sorted(map(str, links.public)),
            "admin_up": dict(links.admin_up),
            "foreign": {device: sorted(map(str, addresses)) for device, addresses in links.foreign.items()},
            "policy_rules": sorted(map(str, links.policy.rules)),
            "policy_routes": sorted(map(str, links.policy.routes)),
            "static_routes": sorted(map(str, links.static_routes)),
        },
        "files": {where(path): file_entry(content, mode) for path, (content, mode) in desired.files.items()},
        "daemons": [{
            "service": daemon.service,
            "enabled": daemon.enabled,
            "standby": daemon.standby,
            "reload_action": daemon.reload_action,
            "restart_files": sorted(where(path) for path in daemon.restart_files),
            "owned_dirs": [where(path) for path in daemon.owned_dirs],
            "checker": daemon.checker is not None,
            "files": {where(path): file_entry(content, mode) for path, (content, mode) in daemon.files.items()},
            "seed_files": {where(path): file_entry(content, mode) for path, (content, mode) in daemon.seed_files.items()},
        } for daemon in desired.daemons],
        "state": state_doc.dumps(state).splitlines(),
    }
    plan = build(desired, bare_router(desired), RouterState(), state)
    plan.steps += dnsmasq.release_steps(RouterState(), state)
    plan.steps += metadata.password_steps(state, paths, {})
    plan.steps += vpn.session_steps(RouterState(), state, paths)
    rendered["plan"] = [f"{step.kind}: {shown(step.summary())}" for step in plan.steps]
    rendered["notes"] = [shown(note) for note in plan.notes]
    return rendered


def bare_router(desired) -> Observed:
    """A router that has its NICs (up, MTU 1500) and nothing else: no address, no route,
    empty tables, no file, no daemon running."""
    devices = sorted({*desired.links.addresses, *desired.links.mtu, *desired.links.admin_up})
    links = {name: Link(name, index, f"02:00:00:00:01:{index:02x}", 1500)
             for index, name in enumerate(devices, start=2)}
    return Observed(
        tables={key: ObservedTable.empty(spec.name) if spec.family == 4 else
                ObservedTable(spec.name, f"*{spec.name}\nCOMMIT\n", family=6)
                for key, spec in desired.tables.items()},
        sysctls={key: None for key in desired.sysctls},
        links=links, addresses={name: set() for name in links}, default_route=None, read_only_sysctls=set())
