"""`vragent supervise`: restart dead daemons where systemd is not there to do it (the lab).

On a VR the systemd units restart a daemon that dies (Restart=always). Where the direct
backend runs daemons, this loop does: every interval it starts each daemon the persisted
state wants that has no live process. It never rewrites files (that is apply's job) and
skips a round while an apply holds the lock.
"""

from __future__ import annotations

import signal
import time

from vragent import engine, lock, log, redundancy
from vragent.errors import LockTimeout
from vragent.paths import Paths


def supervise_once(paths: Paths) -> list[str]:
    """One round; returns the names of the daemons it (re)started."""
    started = []
    # A redundant router whose keepalived died leaves the pair (VIPs down) before it is restarted.
    redundancy.supervise(paths)
    try:
        with lock.apply_lock(paths.lock, wait=0):
            state = engine.load_state(paths)
            desired = engine.render(state, paths)
            for daemon in desired.daemons:
                if not daemon.enabled or daemon.standby or desired.backend.running(daemon.service):
                    continue
                if not all(path.exists() for path, (content, _) in daemon.files.items() if content is not None):
                    continue  # never applied yet: nothing to run
                if daemon.service.name == "keepalived" and not redundancy.may_restart_keepalived(paths, state):
                    continue  # the peer is still taking over
                desired.backend.start(daemon.service)
                started.append(daemon.service.name)
                log.get().warning("supervise: %s was not running; started it", daemon.service.name)
    except LockTimeout:
        pass
    return started


def run(paths: Paths, interval: float = 1.0) -> int:
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        try:
            supervise_once(paths)
        except Exception as exc:  # noqa: BLE001 - a supervisor must outlive one bad round
            log.get().error("supervise: %s", exc)
        time.sleep(interval)
    return 0
