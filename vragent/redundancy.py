"""Redundant router pairs: VRRP settings, pair consistency, the VRRP role and its transitions.

Two routers serve one guest network. keepalived (VRRP) decides which one is PRIMARY; the
other is BACKUP (or FAULT when its guest link or keepalived is gone). Everything here is
driven by what the management server sends (cloudstack-vr.md §3.6): cmdline
`redundant_router`, `router_id`, `router_pr`, `advert_int`, `router_password`, and the
guest gateway (`guestgw`, or `router_guest_gateway` of a guestnetwork push) as the VIP.

Where it fits in the pipeline:

- `settings(state)` (pure): the VRRP settings keepalived.conf and conntrackd.conf render.
- `check_state(state, origins)` (pure): refuses pushes that could give the pair two masters.
- `shape(desired, state, role)` (pure): the role decides what the regular apply converges to.
  A router that is not PRIMARY keeps its public NICs down (both routers share the public MAC;
  public IPs fail over by link state, never as VIPs), has no default route (nor the
  policy tables' routes via public gateways: the kernel refuses them on a down link), and keeps its
  primary-only daemons (dnsmasq, HAProxy) configured but stopped. The VIPs belong to
  keepalived: a PRIMARY makes sure they are there, any other role leaves them alone.
  So an ordinary push to a BACKUP changes nothing behind keepalived's back, and a second
  apply on either router changes nothing at all.
- `transition(paths, role)`: what keepalived reports (through `notify_loop`, its
  notify_fifo_script, so events arrive in order) is written to run/vragent/redundant-state
  and converged by the same pipeline under the apply lock, wrapped in conntrackd's
  commit/resync and gratuitous ARP.
- `supervise(paths)`: keepalived gone (SIGKILL keeps its VIP in 2.2.7) -> FAULT with the
  VIPs released, before anything restarts it.
"""

from __future__ import annotations

import enum
import json
import os
import signal
import time
from dataclasses import dataclass, replace
from ipaddress import IPv4Address, IPv4Interface

from vragent import files, log
from vragent.errors import ValidationError
from vragent.model import RouterState
from vragent.paths import Paths

# Services only the PRIMARY runs (by ServiceSpec name); HAProxy joins when it exists, radvd
# on a dual-stack pair (two routers advertising would give guests two default routers).
PRIMARY_ONLY = frozenset({"dnsmasq", "haproxy", "radvd", "strongswan", "xl2tpd"})
# The pair's own daemons: their lifecycle belongs to the supervisor (systemd on a VR).
SUPERVISED = frozenset({"keepalived", "conntrackd"})
# One VRRP instance, on the first guest NIC; its name must never change (a reload keeps
# the state of an instance with the same name, a renamed one starts over as BACKUP).
INSTANCE = "vragent_guest"
# VRRPv2 advertisement interval in whole seconds: 1 is CloudStack's default; much longer
# turns a failover into minutes (3 x advert_int + skew).
ADVERT_INT_RANGE = (1, 60)
DEFAULT_PRIORITY = 100
AUTH_PASS_LENGTH = 8  # keepalived uses the first 8 characters of auth_pass (VRRPv2 PASS)
# conntrackd's state sync on the guest segment (the incumbent's values).
SYNC_GROUP, SYNC_PORT = IPv4Address("225.0.0.50"), 3780
VRRP_GROUP = IPv4Address("224.0.0.18")


class Role(enum.Enum):
    PRIMARY = "PRIMARY"
    BACKUP = "BACKUP"
    FAULT = "FAULT"


# What keepalived writes to its notify FIFO -> our role.
KEEPALIVED_STATES = {"MASTER": Role.PRIMARY, "BACKUP": Role.BACKUP, "FAULT": Role.FAULT, "STOP": Role.FAULT,
                     "DELETED": Role.FAULT}


@dataclass(frozen=True)
class Vip:
    device: str
    interface: IPv4Interface  # gateway/prefix of the guest network

    def __str__(self) -> str:
        return f"{self.interface} dev {self.device}"


@dataclass(frozen=True)
class VrrpSettings:
    """What keepalived and conntrackd run with. Pair-wide fields must be equal on both routers
    (`fingerprint`); `priority`, `name`, `own_ip` and `control_ip` are this router's own."""

    interface: str
    vrid: int
    advert_int: int
    password: str
    vips: tuple[Vip, ...]  # vips[0]: the stable primary VIP; the rest: virtual_ipaddress_excluded
    priority: int
    name: str
    own_ip: IPv4Address
    control_ip: IPv4Address | None

    @property
    def primary_vip(self) -> Vip:
        return self.vips[0]

    @property
    def excluded(self) -> tuple[Vip, ...]:
        return self.vips[1:]

    def fingerprint(self) -> str:
        """A digest of everything both routers must agree on (not of the password itself)."""
        import hashlib

        pairwide = {"instance": INSTANCE, "interface": self.interface, "vrid": self.vrid,
                    "advert_int": self.advert_int, "auth": hashlib.sha256(self.password.encode()).hexdigest(),
                    "vips": [str(v) for v in self.vips]}
        return hashlib.sha256(json.dumps(pairwide, sort_keys=True).encode()).hexdigest()[:16]


def enabled(state: RouterState) -> bool:
    return state.config.get("redundant_router") == "true"


def vrid_of(router_id: str) -> int:
    """VRID 1..255 from CloudStack's router_id (shared by both routers of a pair): itself
    when it fits, wrapped otherwise. Each guest network is its own L2 segment, so VRIDs of
    different networks never meet."""
    return (int(router_id) - 1) % 255 + 1


def _int(text: str | None, default: int) -> int:
    return int(text) if text and text.isdigit() else default


def settings(state: RouterState) -> VrrpSettings | None:
    """The VRRP settings of a (validated) redundant router; None when it is not one."""
    if not enabled(state):
        return None
    guests = state.all_guest_networks()
    if not guests:
        return None
    import hashlib  # here, not at import time: every apply imports this module

    cfg = state.config
    router_id = cfg.get("router_id", "1")
    password = cfg.get("router_password") or \
        hashlib.md5(f"{cfg.get('eth2ip', '')}-{router_id}".encode()).hexdigest()  # the incumbent's default
    control = state.control_interface
    return VrrpSettings(
        interface=guests[0].device,
        vrid=vrid_of(router_id) if router_id.isdigit() and int(router_id) > 0 else 1,
        advert_int=_int(cfg.get("advert_int"), 1),
        password=password[:AUTH_PASS_LENGTH],
        vips=tuple(Vip(n.device, IPv4Interface(f"{n.gateway}/{n.prefix}")) for n in guests),
        priority=_int(cfg.get("router_pr"), DEFAULT_PRIORITY),
        name=cfg.get("name") or "vragent",
        own_ip=guests[0].router_ip,
        control_ip=control.ip if control is not None else None,
    )


# -- validation --------------------------------------------------------------------------------

def check_state(state: RouterState, origins: dict | None = None) -> list[ValidationError]:
    """Refuse what could make the pair disagree on the VRID or the VIPs (two masters).

    `origins` as validate.check_state takes it: where the items of this push came from."""
    if not enabled(state):
        return []
    from vragent.validate import origin_of
    from vragent.wire import cmdline as cmdline_wire

    origins = origins or {}
    cmdline = origin_of(origins, cmdline_wire.ORIGIN, "state:cmdline")
    cfg = state.config
    errors: list[ValidationError] = []

    def error(key: str, message: str) -> None:
        errors.append(ValidationError(f"{cmdline}.{key}", message))

    router_id = cfg.get("router_id")
    if not router_id:
        error("router_id", "is required on a redundant router: both routers derive their VRRP "
                           "virtual router id (VRID 1..255) from it")
    elif not router_id.isdigit() or int(router_id) < 1:
        error("router_id", f"{router_id!r} is not a positive integer; the VRID (1..255) is derived from it")
    priority = cfg.get("router_pr")
    if priority is not None and not (priority.isdigit() and 1 <= int(priority) <= 254):
        error("router_pr", f"{priority!r} is not a VRRP priority 1..254 (255 means address owner "
                           "and would preempt the peer)")
    advert = cfg.get("advert_int")
    low, high = ADVERT_INT_RANGE
    if advert is not None and not (advert.isdigit() and low <= int(advert) <= high):
        error("advert_int", f"{advert!r} is not an advertisement interval of {low}..{high} whole seconds "
                            "(VRRPv2; the backup takes over after 3 x advert_int)")
    password = cfg.get("router_password")
    if password is not None and (not password or any(c.isspace() or c in "\"'#!\\" or not c.isprintable()
                                                     for c in password)):
        error("router_password", "must be printable, without spaces, quotes, '#', '!' or backslashes "
                                 "(it becomes keepalived's auth_pass)")

    ipv6 = state.ipv6
    if ipv6 is not None and cfg.get("guestgw6") and ipv6.gateway == ipv6.guest.ip:
        error("guestgw6", f"the IPv6 gateway {ipv6.gateway} is this router's own guest address (eth0ip6); "
                          "on a redundant pair it is held by the PRIMARY only and must differ from each "
                          "router's own address")

    guests = state.all_guest_networks()
    if not guests and not state.is_vpc:
        # A VPC's tiers come later, by guestnetwork: until the first, it stays standby (shape).
        error("redundant_router", "a redundant router needs a guest network: VRRP runs on the guest NIC")
    elif guests and guests[0].device in state.public_devices():
        # VRRP bound to a public NIC never hears the peer while the backup keeps it down (#3402).
        network = guests[0]
        errors.append(ValidationError(origin_of(origins, network, f"state:guest_networks[{network.device}]") + ".device",
                                      f"VRRP would run on {network.device}, which also holds public IPs; "
                                      "it must run on a guest-only NIC"))
    for network in guests:
        from_cmdline = network not in state.guest_networks
        if from_cmdline:
            path = f"{cmdline}.guestgw"
        else:
            path = origin_of(origins, network, f"state:guest_networks[{network.device}]") + ".router_guest_gateway"
        vip = network.gateway
        if from_cmdline and not cfg.get("guestgw"):
            errors.append(ValidationError(path, "is required on a redundant router: it is the VRRP VIP "
                                                "the guests use as their gateway"))
        elif vip == network.router_ip:
            errors.append(ValidationError(path, f"the VIP {vip} is this router's own guest address "
                                                f"({network.device}); on a redundant pair the gateway must "
                                                "differ from each router's own address, or both answer for it"))
        elif vip not in network.network:
            errors.append(ValidationError(path, f"the VIP {vip} is outside the guest network {network.network}"))
        elif vip in (network.network.network_address, network.network.broadcast_address):
            errors.append(ValidationError(path, f"the VIP {vip} is the network or broadcast address "
                                                f"of {network.network}"))
    return errors


# -- the role -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class RoleRecord:
    role: Role
    since: float = 0.0  # wall clock of the last change
    reason: str = ""
    transitions: int = 0  # role changes since the record was created (boot: /run is a tmpfs)
    released: bool = False  # FAULT with the VIPs taken down by vragent (keepalived was gone)


def role_file(paths: Paths):
    return paths.run_dir / "redundant-state"


def read_role(paths: Paths) -> RoleRecord | None:
    text = files.read_text(role_file(paths))
    if not text:
        return None
    try:
        data = json.loads(text)
        return RoleRecord(Role(data["role"]), data.get("since", 0.0), data.get("reason", ""),
                          data.get("transitions", 0), data.get("released", False))
    except (ValueError, KeyError, TypeError):
        return None


def write_role(paths: Paths, role: Role, reason: str, released: bool = False) -> RoleRecord:
    previous = read_role(paths)
    changed = previous is None or previous.role is not role
    moved = changed or previous.released != released  # `since` dates the release too (restart hold-off)
    record = RoleRecord(role, time.time() if moved else previous.since, reason,
                        (previous.transitions if previous else 0) + (1 if changed and previous else 0), released)
    files.atomic_write(role_file(paths), json.dumps(record.__dict__ | {"role": role.value}) + "\n", 0o644)
    return record


def current_role(paths: Paths) -> Role:
    """The role the regular apply converges to. Never PRIMARY unless keepalived said so:
    a router that has not heard from VRRP yet (first apply, boot) is a BACKUP."""
    record = read_role(paths)
    return record.role if record is not None else Role.BACKUP


# -- render: what the role means for the rest of the router ----------------------------------

def shape(desired, state: RouterState, role: Role, release_vips: bool = False,
          held_vips: frozenset[Vip] = frozenset()):
    """The desired router for this VRRP role (pure; `desired` is a plan.Desired).

    `held_vips`: the VIPs of the keepalived.conf keepalived runs with now (configured_vips).
    One the state no longer has (its tier removed) is keepalived's to remove when it reloads:
    deleting a VIP behind a MASTER's back makes it go BACKUP and back (a transition, seen in
    the lab with keepalived 2.2.7)."""
    vrrp = settings(state)
    if vrrp is None and not (enabled(state) and state.is_vpc):
        return desired
    # A redundant VPC router without a tier yet runs no VRRP: it stays standby, as the
    # incumbent's set_backup without a guest NIC, so two routers never share the public side.
    primary = role is Role.PRIMARY and vrrp is not None
    down = standby_down_devices(state)
    links = desired.links
    addresses = dict(links.addresses)
    foreign: dict[str, frozenset[IPv4Interface]] = dict(links.foreign)
    for vip in vrrp.vips if vrrp is not None else ():
        if primary:
            # After the router's own address, so that stays the NIC's primary address.
            addresses[vip.device] = tuple(dict.fromkeys((*addresses.get(vip.device, ()), vip.interface)))
        elif not release_vips:
            foreign[vip.device] = foreign.get(vip.device, frozenset()) | {vip.interface}
    if primary:
        for vip in held_vips - set(vrrp.vips):
            foreign[vip.device] = foreign.get(vip.device, frozenset()) | {vip.interface}
        for device, interface in ipv6_gateway_vips(state):
            # The guests' IPv6 gateway (guestgw6, a VPC tier's router_guest_ip6_gateway) is the
            # PRIMARY's alone, as the incumbent's _add_ipv6_guest_gateway; elsewhere the plan
            # removes it like any unwanted address.
            addresses[device] = tuple(dict.fromkeys((*addresses.get(device, ()), interface)))
    links = replace(links, addresses=addresses, foreign=foreign,
                    admin_up={**links.admin_up, **{device: primary for device in down}},
                    default_route=links.default_route if primary else None,
                    default_route6=links.default_route6 if primary else None,
                    policy=links.policy if primary else links.policy.without_gateways(),
                    # The kernel refuses routes via a down link: a BACKUP keeps those via tiers only.
                    static_routes=links.static_routes if primary else
                    frozenset(r for r in links.static_routes if r.device not in down),
                    public=links.public if primary else frozenset())
    daemons = [replace(d, standby=True) if not primary and d.enabled and d.service.name in PRIMARY_ONLY else d
               for d in desired.daemons]
    if release_vips:
        # Leaving the pair because keepalived is gone: restarting keepalived and conntrackd is
        # the supervisor's (systemd's) business, never this transition's; it leaves them alone.
        daemons = [d for d in daemons if d.service.name not in SUPERVISED]
    return replace(desired, links=links, daemons=daemons)


def ipv6_gateway_vips(state: RouterState) -> list:
    """(NIC, gateway/prefix) of each IPv6 guest network whose gateway is not the router's own
    address there: an isolated pair's guestgw6, a VPC pair's tiers' IPv6 gateways."""
    from ipaddress import IPv6Interface

    from vragent.model import GUEST_DEVICE

    found = []
    ipv6 = state.ipv6
    if ipv6 is not None and ipv6.gateway != ipv6.guest.ip:
        found.append((GUEST_DEVICE, IPv6Interface(f"{ipv6.gateway}/{ipv6.guest.network.prefixlen}")))
    for tier in state.vpc_ipv6_tiers():
        if tier.ipv6.gateway != tier.ipv6.address.ip:
            found.append((tier.device, IPv6Interface(f"{tier.ipv6.gateway}/{tier.ipv6.network.prefixlen}")))
    return found


def configured_vips(paths: Paths) -> frozenset[Vip]:
    """The VIPs (`<address>/<prefix> dev <nic>` lines) of the keepalived.conf on disk."""
    import re

    from vragent.render import keepalived

    text = files.read_text(keepalived.KeepalivedPaths.of(paths).conf) or ""
    found = set()
    for address, device in re.findall(r"^\s+(\d+\.\d+\.\d+\.\d+/\d+) dev (\S+)\s*$", text, re.M):
        try:
            found.add(Vip(device, IPv4Interface(address)))
        except ValueError:
            continue
    return frozenset(found)


def standby_down_devices(state: RouterState) -> tuple[str, ...]:
    """The NICs a router that is not PRIMARY keeps down: every public NIC (both routers share
    its MAC and IPs) and, on a VPC, every private gateway's NIC. The management server sends
    a private gateway as a public IP (nw_type Public) with the same address and MAC to both
    routers, so it moves by link state like a public NIC: UP on the PRIMARY, DOWN on the
    BACKUP (CloudStack's test_04_rvpc_privategw_static_routes checks exactly that)."""
    from vragent.model import device_index

    devices = {*state.public_devices(), *(p.device for p in state.private_gateways)}
    return tuple(sorted(devices, key=device_index))


# -- transitions ----------------------------------------------------------------------------------

def _conntrackd(paths: Paths, *flags: str) -> None:
    """One conntrackd control command; a missing daemon is logged, never fatal (the pair
    keeps forwarding, only established flows may not survive)."""
    from vragent import runner
    from vragent.render.conntrackd import ConntrackdPaths

    conf = ConntrackdPaths.of(paths).conf
    try:
        runner.run(["conntrackd", "-C", str(conf), *flags], timeout=15)
    except runner.CommandFailed as exc:
        log.get().warning("conntrackd %s: %s", " ".join(flags), exc)


def _gratuitous_arps(state: RouterState, vrrp: VrrpSettings) -> None:
    """Announce every VIP and public IP from here, 3 times over 2 s (-U: unsolicited), so
    neighbours and switches move to this router at once (#3352; Neutron 1453855)."""
    from vragent import runner

    targets = [(vip.device, vip.interface.ip) for vip in vrrp.vips]
    targets += [(pip.device, pip.ip) for pip in state.ordered_public_ips()]
    targets += [(pgw.device, pgw.ip) for pgw in state.private_gateways]  # a VPC's: same IP on both
    for device, ip in targets:
        runner.spawn(["arping", "-q", "-U", "-c", "3", "-I", device, str(ip)])


def keepalived_running(paths: Paths) -> int | None:
    from vragent import services
    from vragent.render import keepalived

    return services.backend(paths).running(keepalived.SERVICE)


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
    from vragent import engine, lock

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


# -- keepalived's notify FIFO ------------------------------------------------------------------

class _Stop(Exception):
    pass


def parse_notify(line: str) -> Role | None:
    """`INSTANCE "vragent_guest" MASTER 99` -> Role.PRIMARY; other lines -> None."""
    import shlex

    try:
        words = shlex.split(line)
    except ValueError:
        return None
    if len(words) >= 3 and words[0] == "INSTANCE" and words[1] == INSTANCE:
        return KEEPALIVED_STATES.get(words[2])
    return None


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


# -- supervision and status --------------------------------------------------------------------

def supervise(paths: Paths) -> bool:
    """keepalived should run and does not: leave the pair (FAULT, VIPs released) before it is
    restarted; a restarted keepalived starts as BACKUP. True when it acted."""
    from vragent import engine
    from vragent.render import keepalived

    try:
        state = engine.load_state(paths)
    except Exception:  # noqa: BLE001 - the supervisor reports an unreadable state elsewhere
        return False
    if settings(state) is None or keepalived_running(paths):
        return False
    if not keepalived.KeepalivedPaths.of(paths).conf.exists():
        return False  # never applied: nothing to leave
    record = read_role(paths)
    if record is not None and record.role is Role.FAULT and record.released:
        return False
    result = transition(paths, Role.FAULT, reason="keepalived is not running", release_vips=True,
                        only_if_keepalived_dead=True, lock_wait=1.0)
    return result is not None and result.notes != [engine.SKIPPED]


def restart_hold_off(vrrp: VrrpSettings) -> float:
    """How long a keepalived that died stays down before it is restarted.

    The peer's master-down timer started at the last advertisement it heard (at most one
    advert_int before the death); a restarted keepalived starts its own full timer only when
    it starts. Restarting at once could let this router, with the higher priority, win that
    race by a few milliseconds and then preempt the peer; a delay of advert_int + 1 s makes
    the peer always first (systemd: RestartSec=2s for advert_int 1)."""
    return vrrp.advert_int + 1.0


def may_restart_keepalived(paths: Paths, state: RouterState) -> bool:
    vrrp = settings(state)
    record = read_role(paths)
    if vrrp is None or record is None or not (record.role is Role.FAULT and record.released):
        return True
    return time.time() - record.since >= restart_hold_off(vrrp)


def status(paths: Paths) -> dict:
    """What checkrouter.sh reports: keepalived not running means FAULT (as the incumbent's)."""
    from vragent import engine, services
    from vragent.render import conntrackd

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
        "conntrackd_pid": services.backend(paths).running(conntrackd.SERVICE),
        "interface": vrrp.interface,
        "vrid": vrrp.vrid,
        "priority": vrrp.priority,
        "advert_int": vrrp.advert_int,
        "vips": [str(v) for v in vrrp.vips],
        "fingerprint": vrrp.fingerprint(),
    }


__all__ = ["Role", "VrrpSettings", "check_state", "settings", "shape", "status", "transition"]
