"""`vragent supervise`: restart the router's daemons when they die (where systemd does not).

On a VR systemd restarts them (Restart=always in systemd/vragent-*.service). In the lab
and in tests daemons run directly with pidfiles under the root; this loop polls every
enabled daemon's pidfile once per interval and starts a dead one through the same
backend and hooks an apply uses. Which daemons are enabled comes from the persisted
state, read on every tick, so a daemon an apply stopped (its last load balancer gone)
is not brought back; a daemon whose files were never written (no apply yet) is left
alone. It never rewrites files: that is apply's job.

A tick takes the apply lock without waiting: while an apply runs (and may be stopping
or restarting a daemon on purpose) the tick is skipped.
"""

from __future__ import annotations

import signal
import time

from vragent import engine
from vragent.shell import lock, log
from vragent.ops import failover
from vragent.errors import ApplyFailed, LockTimeout
from vragent.paths import Paths


def tick(paths: Paths) -> list[str]:
    """One pass; returns the names of the daemons it started."""
    logger = log.get()
    started: list[str] = []
    # A redundant router whose keepalived died leaves the pair (VIPs down) before it is restarted.
    failover.supervise(paths)
    try:
        with lock.apply_lock(paths.lock, wait=0, what="supervise"):
            state = engine.load_state(paths)
            desired = engine.render(state, paths)
            for daemon in desired.daemons:
                if not daemon.enabled or daemon.standby or desired.runtime.backend.running(desired.runtime.spec(daemon.service)):
                    continue
                if not all(path.exists() for path, (content, _) in daemon.files.items() if content is not None):
                    continue  # never applied yet: nothing to run
                if daemon.service == "keepalived" and not failover.may_restart_keepalived(paths, state):
                    continue  # the peer is still taking over
                logger.warning("supervise: %s is not running; starting it", daemon.service)
                try:
                    hooks = desired.runtime.hooks(daemon.service)
                    if hooks is not None:
                        hooks.before("start")
                    desired.runtime.backend.start(desired.runtime.spec(daemon.service))
                    if hooks is not None:
                        hooks.after("start")
                except Exception as exc:  # noqa: BLE001 - keep supervising the others, retry next tick
                    logger.error("supervise: starting %s failed: %s", daemon.service, exc)
                    continue
                started.append(daemon.service)
    except LockTimeout:
        pass  # an apply is running; it converges the daemons itself
    except ApplyFailed as exc:  # unreadable state: nothing to go by
        logger.error("supervise: %s", exc)
    return started


def run(paths: Paths, interval: float = 1.0, once: bool = False) -> int:
    stopping: list[bool] = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    while not stopping:
        try:
            tick(paths)
        except Exception as exc:  # noqa: BLE001 - a supervisor must outlive one bad tick
            log.get().error("supervise: %s", exc)
        if once:
            return 0
        time.sleep(interval)
    return 0
