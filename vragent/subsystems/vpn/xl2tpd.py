"""xl2tpd for the remote-access VPN: it daemonises itself and writes its pidfile (-p);
its control pipe (-C) lives in vragent's run directory, so every lab router has its
own. It has no reload: a change of its files restarts it (render/vpn.py)."""

from __future__ import annotations

import signal

from vragent.paths import Paths
from vragent.shell.services import ServiceSpec


def argv(paths: Paths) -> list[str]:
    from vragent.subsystems.vpn.render import VpnPaths

    files = VpnPaths(paths)
    return ["xl2tpd", "-c", str(files.xl2tpd_conf), "-p", str(files.xl2tpd_pid), "-C", str(files.xl2tpd_control)]


def _pidfile(paths: Paths):
    from vragent.subsystems.vpn.render import VpnPaths

    return VpnPaths(paths).xl2tpd_pid


SERVICE = ServiceSpec(name="xl2tpd", argv=argv, pidfile=_pidfile, reload_signal=signal.SIGHUP)
