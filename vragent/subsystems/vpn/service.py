"""strongSwan (charon-systemd) for the remote-access VPN, and loading its swanctl.conf.

charon-systemd stays in the foreground and writes no pidfile (systemd tracks it); run
directly (lab, tests) it is backgrounded by start-stop-daemon, which writes the pidfile
under the root. STRONGSWAN_CONF points both charon and swanctl at vragent's own
strongswan.conf, so nothing of /etc/strongswan.conf or /etc/swanctl is used and the
vici socket lives in vragent's run directory (every lab router has its own).

charon never reads swanctl.conf itself: after a start, restart or reload the hooks wait
for the vici socket and run `swanctl --load-all --clear`, which replaces the loaded
connection and key with the file's (and unloads what the file no longer has) without
touching the established SAs of other clients.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass

from vragent.shell import runner
from vragent.paths import Paths
from vragent.shell.services import ServiceSpec
from vragent.subsystems.vpn.render import STRONGSWAN_NAME, XL2TPD_NAME, VpnPaths

CHARON = "/usr/sbin/charon-systemd"
SOCKET_TIMEOUT = 10.0


def _env(paths: Paths) -> list[str]:

    return ["env", f"STRONGSWAN_CONF={VpnPaths(paths).strongswan_conf}"]


def argv(paths: Paths) -> list[str]:

    return [*_env(paths), "start-stop-daemon", "--start", "--quiet", "--background", "--make-pidfile",
            "--pidfile", str(VpnPaths(paths).charon_pid), "--exec", CHARON]


def _pidfile(paths: Paths):

    return VpnPaths(paths).charon_pid


# SIGHUP makes charon re-read strongswan.conf (its logging and plugin settings); the
# connection itself is reloaded over vici by the hooks.
SERVICE = ServiceSpec(name=STRONGSWAN_NAME, argv=argv, pidfile=_pidfile, reload_signal=signal.SIGHUP,
                      hooks=lambda paths: Hooks(paths))


def swanctl(paths: Paths, *args: str) -> runner.Completed:

    files = VpnPaths(paths)
    return runner.run([*_env(paths), "swanctl", *args, "--uri", f"unix://{files.vici}"], timeout=30)


def load(paths: Paths) -> None:

    files = VpnPaths(paths)
    deadline = time.monotonic() + SOCKET_TIMEOUT
    while not os.path.exists(files.vici):
        if time.monotonic() > deadline:
            raise OSError(f"strongSwan: no vici socket at {files.vici} {SOCKET_TIMEOUT:g} s after starting charon")
        time.sleep(0.02)
    last: Exception | None = None
    while True:  # the socket file appears a moment before charon accepts on it
        try:
            swanctl(paths, "--load-all", "--clear", "--noprompt", "--file", str(files.swanctl_conf))
            return
        except runner.CommandFailed as exc:
            last = exc
        if time.monotonic() > deadline:
            raise OSError(f"strongSwan: swanctl could not load {files.swanctl_conf}: {last}")
        time.sleep(0.1)


@dataclass
class Hooks:
    """Called by the daemon step around each action (DaemonStep.hooks)."""

    paths: Paths

    def before(self, action: str) -> None:
        from vragent.subsystems.vpn.render import VpnPaths

        if action in ("start", "restart"):
            files = VpnPaths(self.paths)
            files.vici.parent.mkdir(parents=True, exist_ok=True)
            files.charon_log.parent.mkdir(parents=True, exist_ok=True)

    def after(self, action: str) -> None:
        if action in ("start", "restart", "reload"):
            load(self.paths)


# checkbatchs2svpn.sh (CheckS2SVpnConnectionsCommand): `<ip>:<rc>:<info>&` per peer asked
# for, printed without a newline; the management server splits on `&`, then on `:` into
# exactly three parts, and counts a peer connected iff rc is 0 (cloudstack-vr-wave2.md
# §3.2). The incumbent's checks2svpn.sh greps `ipsec status vpn-<ip>` for ESTABLISHED
# (the IKE SA); the same is asked of charon here, over vici, for the peer's connection.
S2S_CONNECTED = (0, "IPsec SA found;Site-to-site VPN have connected")
S2S_NOT_CONNECTED = (11, "IPsec SA not found;Site-to-site VPN have not connected")


def s2s_status_line(peers: list[str], list_sas) -> str:
    """The batch answer for `peers`; list_sas(name) is swanctl --list-sas of one connection."""
    out = []
    for peer in peers:
        name = "vpn-" + peer.replace(".", "-")
        try:
            listed = list_sas(name)
        except (runner.CommandFailed, OSError):
            listed = ""
        connected = any(line.lstrip().startswith(f"{name}:") and "ESTABLISHED" in line for line in listed.splitlines())
        rc, info = S2S_CONNECTED if connected else S2S_NOT_CONNECTED
        out.append(f"{peer}:{rc}:{info}&")
    return "".join(out)


def s2s_status(paths: Paths, peers: list[str]) -> str:

    if not os.path.exists(VpnPaths(paths).vici):  # charon is not running: nothing is connected
        return s2s_status_line(peers, lambda name: "")
    return s2s_status_line(peers, lambda name: swanctl(paths, "--list-sas", "--ike", name).stdout)


# -- xl2tpd: it daemonises itself and writes its pidfile (-p); its control pipe (-C) lives in
# vragent's run directory, so every lab router has its own. It has no reload: a change of its
# files restarts it (render.py).

def xl2tpd_argv(paths: Paths) -> list[str]:

    files = VpnPaths(paths)
    return ["xl2tpd", "-c", str(files.xl2tpd_conf), "-p", str(files.xl2tpd_pid), "-C", str(files.xl2tpd_control)]


def _xl2tpd_pidfile(paths: Paths):

    return VpnPaths(paths).xl2tpd_pid


XL2TPD = ServiceSpec(name=XL2TPD_NAME, argv=xl2tpd_argv, pidfile=_xl2tpd_pidfile, reload_signal=signal.SIGHUP)
