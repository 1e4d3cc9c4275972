"""The data server (metadata, user-data, passwords) as a service: the agent's own interpreter
runs vragent.metadata_server (the OS face of guest data)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

from vragent.paths import Paths
from vragent.shell.services import ServiceSpec
from vragent.subsystems.guestdata.render import SERVICE_NAME, MetadataPaths


def interpreter() -> str:
    """The agent's own interpreter (the server is part of the vragent package), by its name
    `python3` where it has one (a venv's bin/python3, Debian's /usr/bin/python3): the health
    monitor finds the server by that name (monitor.conf, `pidof python3`), whoever started it."""
    named = Path(sys.executable).with_name("python3")
    return str(named) if named.exists() else sys.executable


def argv(paths: Paths) -> list[str]:
    files = MetadataPaths.of(paths)
    return [interpreter(), "-m", "vragent.metadata_server", "--config", str(files.config),
            "--pidfile", str(files.pid)]


SERVICE = ServiceSpec(name=SERVICE_NAME, argv=argv, pidfile=lambda paths: MetadataPaths.of(paths).pid,
                      reload_signal=signal.SIGHUP)
