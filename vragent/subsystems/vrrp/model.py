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
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Interface

from vragent.model import RouterState

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


# -- the role -----------------------------------------------------------------------------------


# -- render: what the role means for the rest of the router ----------------------------------


# -- transitions ----------------------------------------------------------------------------------


# -- keepalived's notify FIFO ------------------------------------------------------------------


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


# -- supervision and status --------------------------------------------------------------------


def restart_hold_off(vrrp: VrrpSettings) -> float:
    """How long a keepalived that died stays down before it is restarted.

    The peer's master-down timer started at the last advertisement it heard (at most one
    advert_int before the death); a restarted keepalived starts its own full timer only when
    it starts. Restarting at once could let this router, with the higher priority, win that
    race by a few milliseconds and then preempt the peer; a delay of advert_int + 1 s makes
    the peer always first (systemd: RestartSec=2s for advert_int 1)."""
    return vrrp.advert_int + 1.0

