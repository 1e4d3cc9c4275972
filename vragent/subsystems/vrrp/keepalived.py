"""VRRP for a redundant pair (keepalived), rendered from `redundancy.settings` only.

keepalived.conf holds nothing but VRRP settings, so a push that does not change them
(rules, public IPs, DHCP entries) never touches keepalived. A change is applied with
SIGHUP: keepalived keeps the state of an instance whose name is unchanged, so a reload
is not a transition. The VIP in the advertisements is the first guest network's gateway
and never changes with other guest networks (those are virtual_ipaddress_excluded),
so the peer never sees an "unexpected ip number count" (CloudStack #8108).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from vragent.subsystems.vrrp import model as redundancy
from vragent import templating
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.desired import DaemonDesired


@dataclass(frozen=True)
class KeepalivedPaths:
    conf: Path
    pid: Path
    vrrp_pid: Path
    checkers_pid: Path
    bfd_pid: Path
    fifo: Path
    notify: Path

    @classmethod
    def of(cls, paths: Paths) -> "KeepalivedPaths":
        run = paths.run_dir
        # The paths systemd/vragent-keepalived.service and packaging/lib/keepalived-vips use.
        base = paths.under("etc/keepalived")
        return cls(base / "keepalived.conf", run / "keepalived.pid", run / "keepalived_vrrp.pid",
                   run / "keepalived_checkers.pid", run / "keepalived_bfd.pid", run / "keepalived.fifo",
                   base / "vragent-notify")





KEEPALIVED_NAME = "keepalived"


def notify_script(paths: Paths, python: str | None = None) -> str:
    """keepalived's notify_fifo_script, a wrapper keepalived runs with the FIFO's path.

    A wrapper, not the interpreter itself: keepalived resolves symlinks of the program it
    runs, which would take a virtualenv's python out of its environment, and the reader
    would render a different config than the agent that started keepalived.
    """
    return (f"#!/bin/sh\n# {templating.GENERATED_HEADER}\n"
            f"exec {python or sys.executable} -m vragent --root {paths.root} notify \"$@\"\n")


def render_config(vrrp: redundancy.VrrpSettings, paths: Paths, cache: bool = True) -> str:
    files = KeepalivedPaths.of(paths)
    return templating.render(
        "keepalived.conf.j2", memo=cache,
        vrrp=vrrp, instance=redundancy.INSTANCE, fingerprint=vrrp.fingerprint(),
        fifo=str(files.fifo), notify_command=str(files.notify))


def daemon(state: RouterState, paths: Paths) -> DaemonDesired:
    files = KeepalivedPaths.of(paths)
    vrrp = redundancy.settings(state)
    return DaemonDesired(
        service=KEEPALIVED_NAME,
        enabled=vrrp is not None,
        files={files.conf: (render_config(vrrp, paths) if vrrp is not None else None, 0o644),
               files.notify: (notify_script(paths) if vrrp is not None else None, 0o755)},
        # Every change is a reload: SIGHUP, no transition (see the module docstring).
        restart_files=frozenset(),
        checker=lambda candidates: ["keepalived", "-t", "-f", str(candidates.get(files.conf, files.conf))],
    )
