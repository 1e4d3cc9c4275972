"""FRR's zebra and bgpd for dynamic routing (subsystems/bgp/render.py), each its own daemon.

Run directly (lab, tests) they daemonise themselves (`-d`) and write their pidfiles; on a
VR systemd runs them in the foreground (systemd/vragent-frr-*.service) with the same
arguments. Both run as root with FRR's vty group (`-u root -g frrvty`: FRR refuses a
user outside that group), read only vragent's files, listen on no TCP vty port, and keep
their sockets (vty, zebra's API) in the run directory, so each lab router has its own.
zebra starts before bgpd (engine.DAEMONS order); bgpd reconnects to a restarted zebra.
"""

from __future__ import annotations

from vragent.paths import Paths
from vragent.shell.services import ServiceSpec
from vragent.subsystems.bgp.render import BGPD_NAME, ZEBRA_NAME

RUN_AS = ("-u", "root", "-g", "frrvty")


def _common(paths: Paths, conf, pidfile) -> list[str]:
    from vragent.subsystems.bgp.render import BgpPaths

    files = BgpPaths(paths)
    return ["-d", *RUN_AS, "-f", str(conf), "-i", str(pidfile), "-z", str(files.zserv),
            "--vty_socket", str(files.run), "-P", "0"]


def _prestart(paths: Paths) -> None:
    from vragent.subsystems.bgp.render import BgpPaths

    BgpPaths(paths).run.mkdir(parents=True, exist_ok=True)


def zebra_argv(paths: Paths) -> list[str]:
    from vragent.subsystems.bgp.render import ZEBRA, BgpPaths

    files = BgpPaths(paths)
    return [ZEBRA, *_common(paths, files.zebra_conf, files.zebra_pid)]


def bgpd_argv(paths: Paths) -> list[str]:
    from vragent.subsystems.bgp.render import BGPD, BgpPaths

    files = BgpPaths(paths)
    return [BGPD, *_common(paths, files.bgpd_conf, files.bgpd_pid)]


def _zebra_pid(paths: Paths):
    from vragent.subsystems.bgp.render import BgpPaths

    return BgpPaths(paths).zebra_pid


def _bgpd_pid(paths: Paths):
    from vragent.subsystems.bgp.render import BgpPaths

    return BgpPaths(paths).bgpd_pid


ZEBRA_SERVICE = ServiceSpec(name=ZEBRA_NAME, argv=zebra_argv, pidfile=_zebra_pid, prestart=_prestart)
BGPD_SERVICE = ServiceSpec(name=BGPD_NAME, argv=bgpd_argv, pidfile=_bgpd_pid, prestart=_prestart)


def vtysh(paths: Paths, *commands: str) -> str:
    """`vtysh -c ...` against this router's daemons (their vty sockets), e.g. for status."""
    from vragent.shell import runner
    from vragent.subsystems.bgp.render import BgpPaths

    argv = ["vtysh", "--vty_socket", str(BgpPaths(paths).run)]
    for command in commands:
        argv += ["-c", command]
    return runner.run(argv, timeout=30).stdout
