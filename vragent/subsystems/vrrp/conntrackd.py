"""Connection-tracking state sync for a redundant pair (conntrackd, FTFW mode).

The primary's conntrackd sends every flow it sees to the peer over multicast on the guest
segment (the only segment both routers reach while one is BACKUP; multicast needs no
knowledge of the peer's address). The backup keeps them in its external cache and
commits them to its kernel table when it becomes primary, so established connections,
source NAT included, continue there. conntrackd has no reload: a changed config restarts it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vragent.subsystems.vrrp import model as redundancy
from vragent import templating
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.desired import DaemonDesired


@dataclass(frozen=True)
class ConntrackdPaths:
    conf: Path
    pid: Path
    lock: Path
    socket: Path
    log: Path

    @classmethod
    def of(cls, paths: Paths) -> "ConntrackdPaths":
        run = paths.run_dir
        # The paths systemd/vragent-conntrackd.service uses.
        return cls(paths.under("etc/conntrackd/conntrackd.conf"), run / "conntrackd.pid",
                   run / "conntrackd.lock", run / "conntrackd.ctl", paths.under("var/log/conntrackd.log"))





CONNTRACKD_NAME = "conntrackd"


def render_config(vrrp: redundancy.VrrpSettings, paths: Paths, cache: bool = True) -> str:
    files = ConntrackdPaths.of(paths)
    # The router's own flows (management, the sync itself) are not the guests' and stay local.
    ignore = ["127.0.0.1", str(vrrp.own_ip)] + ([str(vrrp.control_ip)] if vrrp.control_ip else [])
    return templating.render(
        "conntrackd.conf.j2", memo=cache,
        interface=vrrp.interface, own_ip=str(vrrp.own_ip), group=str(redundancy.SYNC_GROUP),
        port=redundancy.SYNC_PORT, ignore=ignore,
        paths={k: str(v) for k, v in vars(files).items()})


def daemon(state: RouterState, paths: Paths) -> DaemonDesired:
    files = ConntrackdPaths.of(paths)
    vrrp = redundancy.settings(state)
    return DaemonDesired(
        service=CONNTRACKD_NAME,
        enabled=vrrp is not None,
        files={files.conf: (render_config(vrrp, paths) if vrrp is not None else None, 0o644)},
        restart_files=frozenset({files.conf}),
    )
