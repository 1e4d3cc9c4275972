"""The data server (metadata, user-data, passwords) as a service: the agent's own interpreter
runs vragent.metadata_server (the OS face of guest data)."""

from __future__ import annotations

import signal
import sys

from vragent.paths import Paths
from vragent.shell.services import ServiceSpec
from vragent.subsystems.guestdata.render import SERVICE_NAME, MetadataPaths


def argv(paths: Paths) -> list[str]:
    # The agent's own interpreter: the server is part of the vragent package.
    files = MetadataPaths.of(paths)
    return [sys.executable, "-m", "vragent.metadata_server", "--config", str(files.config),
            "--pidfile", str(files.pid)]


SERVICE = ServiceSpec(name=SERVICE_NAME, argv=argv, pidfile=lambda paths: MetadataPaths.of(paths).pid,
                      reload_signal=signal.SIGHUP)
