"""VRRP transitions, above the engine: keepalived's notify FIFO, the role change converged
through the engine, supervision of keepalived, and the pair's status."""

from __future__ import annotations

import os
import signal
import time

from vragent.model import RouterState
from vragent.paths import Paths
from vragent.shell import log
from vragent.shell.roles import read_role, write_role
from vragent.subsystems.vrrp.model import Role, VrrpSettings, parse_notify, restart_hold_off, settings


def _conntrackd(paths: Paths, *flags: str) -> None:
    """One conntrackd control command; a missing daemon is logged, never fatal (the pair
    keeps forwarding, only established flows may not survive)."""
    from vragent.shell import runner
    from vragent.subsystems.vrrp.conntrackd import ConntrackdPaths

    conf = ConntrackdPaths.of(paths).conf
    try:
        runner.run(["conntrackd", "-C", str(conf), *flags], timeout=15)
    except runner.CommandFailed as exc:
        log.get().warning("conntrackd %s: %s", " ".join(flags), exc)


def _gratuitous_arps(state: RouterState, vrrp: VrrpSettings) -> None:
    """Announce every VIP and public IP from here, 3 times over 2 s (-U: unsolicited), so
    neighbours and switches move to this router at once (#3352; Neutron 1453855)."""
    from vragent.shell import runner

    targets = [(vip.device, vip.interface.ip) for vip in vrrp.vips]
    targets += [(pip.device, pip.ip) for pip in state.ordered_public_ips()]
    for device, ip in targets:
        runner.spawn(["arping", "-q", "-U", "-c", "3", "-I", device, str(ip)])


def keepalived_running(paths: Paths) -> int | None:
    from vragent.shell import services
    from vragent.subsystems.vrrp import service as vrrp_service

    return services.backend(paths).running(vrrp_service.KEEPALIVED)


def transition(paths: Paths, role: Role, reason: str, *, release_vips: bool = False,
               only_if_keepalived_dead: bool = False, lock_wait: float | None = None):
    """Make this router `role`: persist it and converge the router to it.

    PRIMARY: commit conntrackd's external cache first (before the public NIC attracts
    traffic, or the kernel answers synced flows with RST: keepalived #2254/#2414), then public
    NICs up with their addresses and default route, primary-only daemons started; then
    gratuitous ARP and conntrackd flush/resync/bulk-send (conntrackd's primary-backup.sh).
    BACKUP/FAULT: the reverse; conntrackd keeps its external cache (-t shortens the kernel
    timers of flows the peer now carries; a BACKUP asks the peer for a resync, -n).
    """
    from vragent import engine
    from vragent.shell import lock

    logger = log.get()
    state = engine.load_state(paths)
    vrrp = settings(state)
    if vrrp is None:
        logger.info("transition %s ignored: this router is not redundant", role.value)
        return None
    if role is Role.PRIMARY:
        _conntrackd(paths, "-c")

    def claim() -> bool:
        # Under the apply lock: a push never sees half a transition, and the role it renders is current.
        if only_if_keepalived_dead and keepalived_running(paths):
            return False
        record = write_role(paths, role, reason, released=release_vips)
        logger.warning("redundancy: %s (%s; transition %d)", role.value, reason, record.transitions)
        return True

    result = engine.converge(paths, role=role, release_vips=release_vips, on_locked=claim,
                             lock_wait=lock.DEFAULT_WAIT if lock_wait is None else lock_wait,
                             name=f"transition-{role.value.lower()}")
    if result.notes == [engine.SKIPPED]:
        return result
    if role is Role.PRIMARY:
        _gratuitous_arps(state, vrrp)
        for flag in ("-f", "-R", "-B"):
            _conntrackd(paths, flag)
    else:
        _conntrackd(paths, "-t")
        if role is Role.BACKUP:
            _conntrackd(paths, "-n")
    return result


class _Stop(Exception):
    pass


def _isolated(work, *args, **kwargs) -> int:
    """Run work(*args) in a forked child in its own session and wait for it.

    keepalived stops its notify script with a signal to the script's process group (on a
    reload too); a transition must never be cut short half-way by that, nor its helpers
    (ip, iptables-restore, conntrackd) killed. The fork is warm: no interpreter start.
    """
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setsid()
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            work(*args, **kwargs)
            code = 0
        except BaseException as exc:  # noqa: BLE001 - reported by the exit status
            log.get().error("transition failed: %s", exc)
        finally:
            os._exit(code)
    while True:
        try:
            return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        except ChildProcessError:
            return 1


def notify_loop(paths: Paths, fifo: str, parent_grace: float = 2.0) -> int:
    """keepalived's notify_fifo_script: one long-lived reader, so transitions run in the
    order keepalived reports them and without an interpreter start each time.

    keepalived (its VRRP process is our parent) replaces this reader on a reload with
    SIGTERM, and kills it when it stops. Only the second is a reason to act: if the parent
    is gone within `parent_grace`, this router leaves the pair (FAULT, VIPs released), the
    in-lab counterpart of a systemd unit's ExecStopPost.
    """
    parent = os.getppid()
    busy, stop_requested = [False], [False]

    def on_term(signum, frame):
        stop_requested[0] = True
        if not busy[0]:
            raise _Stop()

    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for module in ("pyroute2", "jinja2"):  # imported now, so a transition does not pay for them
        try:
            __import__(module)
        except ImportError:
            pass
    try:
        with open(fifo, encoding="utf-8", errors="replace") as events:
            for line in events:
                role = parse_notify(line)
                if role is None:
                    continue
                busy[0] = True
                try:
                    _isolated(transition, paths, role, reason=f"keepalived: {line.split()[2]}")
                finally:
                    busy[0] = False
                if stop_requested[0]:
                    break
    except _Stop:
        pass
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    deadline = time.monotonic() + parent_grace
    while time.monotonic() < deadline:
        if os.getppid() != parent:
            # Our parent, keepalived's VRRP process, is gone; its main process follows at once.
            while keepalived_running(paths) and time.monotonic() < deadline + 3.0:
                time.sleep(0.02)
            _isolated(transition, paths, Role.FAULT, reason="keepalived stopped", release_vips=True,
                      only_if_keepalived_dead=True)
            break
        time.sleep(0.02)
    return 0


def supervise(paths: Paths) -> bool:
    """keepalived should run and does not: leave the pair (FAULT, VIPs released) before it is
    restarted; a restarted keepalived starts as BACKUP. True when it acted."""
    from vragent import engine

    try:
        state = engine.load_state(paths)
    except Exception:  # noqa: BLE001 - the supervisor reports an unreadable state elsewhere
        return False
    if settings(state) is None or keepalived_running(paths):
        return False
    from vragent.subsystems.vrrp.keepalived import KeepalivedPaths

    if not KeepalivedPaths.of(paths).conf.exists():
        return False  # never applied: nothing to leave
    record = read_role(paths)
    if record is not None and record.role is Role.FAULT and record.released:
        return False
    result = transition(paths, Role.FAULT, reason="keepalived is not running", release_vips=True,
                        only_if_keepalived_dead=True, lock_wait=1.0)
    return result is not None and result.notes != [engine.SKIPPED]


def may_restart_keepalived(paths: Paths, state: RouterState) -> bool:
    vrrp = settings(state)
    record = read_role(paths)
    if vrrp is None or record is None or not (record.role is Role.FAULT and record.released):
        return True
    return time.time() - record.since >= restart_hold_off(vrrp)


def status(paths: Paths) -> dict:
    """What checkrouter.sh reports: keepalived not running means FAULT (as the incumbent's)."""
    from vragent import engine
    from vragent.shell import services
    from vragent.subsystems.vrrp import service as vrrp_service

    state = engine.load_state(paths)
    vrrp = settings(state)
    if vrrp is None:
        return {"redundant": False, "status": "UNKNOWN"}
    pid = keepalived_running(paths)
    record = read_role(paths)
    role = (record.role if record else Role.BACKUP) if pid else Role.FAULT
    return {
        "redundant": True,
        "status": role.value,
        "since": record.since if record else None,
        "reason": (record.reason if record else "") if pid else "keepalived is not running",
        "transitions": record.transitions if record else 0,
        "keepalived_pid": pid,
        "conntrackd_pid": services.backend(paths).running(vrrp_service.CONNTRACKD),
        "interface": vrrp.interface,
        "vrid": vrrp.vrid,
        "priority": vrrp.priority,
        "advert_int": vrrp.advert_int,
        "vips": [str(v) for v in vrrp.vips],
        "fingerprint": vrrp.fingerprint(),
    }
