"""A CloudStack isolated-network router (or a shared network) rebuilt from Linux network namespaces.

Every machine is a namespace named ``{prefix}-{role}``::

    vm1, vm2 ── brguest ── eth0 ┐
                                ├ vr (and vr2)       roles: "vr", "vr2"
    up ─────── brpub ──── eth2 ┤
    ctl ────── brctl ──── eth1 ┤
    up2 ────── brpub2 ─── eth3 ┘  only with second_public=True: a second public VLAN

With ``Lab(router_type="vpcrouter", tiers=2)`` the router is a VPC router instead
(CloudStack's ``vpcrouter`` layout), one VM in each tier::

    ctl ────── brctl ──── eth0 ┐
    up ─────── brpub ──── eth1 ┤ vr
    vm1 ────── brtier1 ── eth2 ┤     tier 1 (10.70.1.0/24)
    vm2 ────── brtier2 ── eth3 ┤     tier 2 (10.70.2.0/24)
    up2 ────── brpub2 ─── eth4 ┘     only with second_public=True: a further public VLAN
    pgw ────── brpgw ──── eth4       or, only with private_gateway=True: a private gateway
                                     (10.80.5.0/24; pgw is its gateway, 10.90.0.0/16 behind it)

A shared network's lab (``router_type="dhcpsrvr"``) has no public side: the VR is just a
host on the guest segment (eth0 guest, eth1 control), and the guests' real gateway is
another machine there::

    vm1, vm2, gw ── brguest ── eth0 ┐
                                    ├ vr
    ctl ─────────── brctl ──── eth1 ┘

The bridges live in their own ``{prefix}-sw`` namespace, and every veth pair is
created with both ends already inside lab namespaces, so the host's root namespace never
holds a lab interface, not even for a moment.

The routers get links only: no IPv4 address, no route. Configuring them is the job of the
agent under test.
"""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, Sequence

# --- Addresses (documentation ranges only: RFC 5737, plus link-local for control) ---

GUEST_CIDR = "192.0.2.0/24"
GUEST_NETMASK = "255.255.255.0"
ROUTER_GUEST_IP = "192.0.2.1"
VM1_IP = "192.0.2.11"
VM2_IP = "192.0.2.12"
VM1_MAC = "02:00:00:00:00:11"
VM2_MAC = "02:00:00:00:00:12"

PUBLIC_CIDR = "198.51.100.0/24"
PUBLIC_NETMASK = "255.255.255.0"
PUBLIC_GATEWAY = "198.51.100.1"
SOURCE_NAT_IP = "198.51.100.10"
EXTRA_PUBLIC_IPS = ("198.51.100.20", "198.51.100.21", "198.51.100.22")
UPSTREAM_MAC = "02:00:00:00:00:fe"
# Extra "internet" hosts on the upstream's lo, so tests can originate from two sources.
UPSTREAM_SOURCES = ("203.0.113.10", "203.0.113.20")

# The optional second public segment (eth3, CloudStack's NIC for another public VLAN): its
# own gateway, the second upstream, which also holds an "internet" host on its lo that only
# it reaches. Half of 203.0.113.0/24, so UPSTREAM_SOURCES stay outside every router subnet.
SECOND_PUBLIC_CIDR = "203.0.113.128/25"
SECOND_PUBLIC_NETMASK = "255.255.255.128"
SECOND_PUBLIC_GATEWAY = "203.0.113.129"
SECOND_PUBLIC_IPS = ("203.0.113.130", "203.0.113.131", "203.0.113.132")
SECOND_UPSTREAM_MAC = "02:00:00:00:00:fc"
SECOND_UPSTREAM_SOURCE = "203.0.113.40"

# IPv6 (dual stack), only in a lab made with ipv6=True: documentation prefixes (RFC 3849).
GUEST6_CIDR = "2001:db8:1::/64"
ROUTER_GUEST_IP6 = "2001:db8:1::1"
PUBLIC6_CIDR = "2001:db8:ff::/64"
ROUTER_PUBLIC_IP6 = "2001:db8:ff::10"
UPSTREAM_IP6 = "2001:db8:ff::1"  # the router's IPv6 gateway (ip6gateway)

# A VPC lab (router_type="vpcrouter"): the VPC's CIDR and one VM in each tier, on eth2, eth3.
VPC_CIDR = "10.70.0.0/16"
# A dual-stack VPC lab (router_type="vpcrouter", ipv6=True): each tier's /64 (the router is
# ::1 in it), the public IPv6 and upstream as in the isolated dual-stack lab.
VPC_TIER6_CIDRS = {"eth2": "2001:db8:71::/64", "eth3": "2001:db8:72::/64"}


@dataclass(frozen=True)
class VpcTier:
    device: str  # the router's NIC
    cidr: str
    router_ip: str
    vm_ip: str
    vm_mac: str
    bridge: str

    @property
    def prefix(self) -> int:
        return int(self.cidr.split("/")[1])


VPC_TIERS = (
    VpcTier("eth2", "10.70.1.0/24", "10.70.1.1", "10.70.1.11", "02:00:00:00:00:21", "brtier1"),
    VpcTier("eth3", "10.70.2.0/24", "10.70.2.1", "10.70.2.11", "02:00:00:00:00:22", "brtier2"),
)
VPC_ROUTER_MACS = {"eth0": "02:00:00:00:01:00", "eth1": "02:00:00:00:01:01",
                   "eth2": "02:00:00:00:01:02", "eth3": "02:00:00:00:01:03"}
# A VPC's further public VLAN is plugged after its tiers (the lab's has two): eth4, on the
# isolated lab's second public segment (up2, SECOND_PUBLIC_*).
VPC_SECOND_PUBLIC_DEVICE = "eth4"
VPC_ROUTER_MACS[VPC_SECOND_PUBLIC_DEVICE] = "02:00:00:00:01:04"
# A redundant VPC pair (Lab(router_type="vpcrouter", routers=2)): vr2's control NIC and tiers
# have MACs of their own; its public NIC and private gateway share vr's, as CloudStack gives
# both routers one MAC (and one IP) there and fails over by link state.
VPC_ROUTER2_MACS = {**VPC_ROUTER_MACS, "eth0": "02:00:00:00:02:00", "eth2": "02:00:00:00:02:02",
                    "eth3": "02:00:00:00:02:03"}

# A VPC lab's optional private gateway (Lab(..., private_gateway=True)): the router's eth4 on
# its own segment, whose gateway is the "pgw" machine; a "remote" network (a site behind
# the private gateway) is on pgw's lo, reachable only through it. pgw routes the VPC back
# to the router's private gateway IP (routed, no NAT).
PGW_DEVICE = "eth4"
PGW_ROUTER_MAC = "02:00:00:00:01:04"
PGW_CIDR = "10.80.5.0/24"
PGW_NETMASK = "255.255.255.0"
PGW_ROUTER_IP = "10.80.5.2"  # the private gateway's IP (the router's)
PGW_GATEWAY = "10.80.5.1"  # the private network's gateway: the pgw machine
PGW_HOST_MAC = "02:00:00:00:00:fa"
PGW_REMOTE_CIDR = "10.90.0.0/16"  # behind the private gateway: a static route's network
PGW_REMOTE_HOST = "10.90.0.10"  # on pgw's lo
PGW_BRIDGE = "brpgw"

# A shared network's lab (router_type="dhcpsrvr"): the VR is a host on the guest network,
# whose gateway is the "gw" machine; a second IP range (an IP alias of the VR) is another
# subnet on the same segment, with its own gateway on "gw" too.
SHARED_ROUTER_IP = "192.0.2.2"  # the VR's eth0ip
SHARED_GATEWAY = "192.0.2.254"  # the shared network's gateway (cmdline gateway)
ALIAS_CIDR = "10.2.0.0/25"  # not a /24 like the guest network: a VM's netmask shows its range
ALIAS_NETMASK = "255.255.255.128"
ALIAS_ROUTER_IP = "10.2.0.2"  # the VR's IP alias
ALIAS_GATEWAY = "10.2.0.1"
ALIAS_VM_IP = "10.2.0.12"
SHARED_GATEWAY_MAC = "02:00:00:00:00:fb"
# An "internet" host on gw's lo: reachable only through the shared network's gateway.
SHARED_UPSTREAM_HOST = "203.0.113.10"
ROUTER_TYPES = ("router", "vpcrouter", "dhcpsrvr")

CONTROL_CIDR = "169.254.0.0/16"
CONTROL_NETMASK = "255.255.0.0"
CONTROL_HOST_IP = "169.254.0.1"
CONTROL_HOST_MAC = "02:00:00:00:00:fd"
CONTROL_ROUTER_IP = "169.254.1.10"
CONTROL_ROUTER2_IP = "169.254.1.11"

# Router NICs follow CloudStack's `router` type: eth0 guest, eth1 control, eth2 public.
# MACs are 02:00:00:00:0R:0N (R = router number, N = NIC number), except that vr2's
# public NIC shares vr's MAC: on a redundant pair CloudStack gives both routers the same
# public MAC and fails over by link state (the backup keeps eth2 down).
ROUTER_MACS: dict[str, dict[str, str]] = {
    "vr": {"eth0": "02:00:00:00:01:00", "eth1": "02:00:00:00:01:01", "eth2": "02:00:00:00:01:02"},
    "vr2": {"eth0": "02:00:00:00:02:00", "eth1": "02:00:00:00:02:01", "eth2": "02:00:00:00:01:02"},
}
# eth3 exists only in a lab with a second public segment; shared by a pair like eth2.
SECOND_PUBLIC_MAC = "02:00:00:00:01:03"
ROUTER_GUEST_MAC = ROUTER_MACS["vr"]["eth0"]
ROUTER_CONTROL_MAC = ROUTER_MACS["vr"]["eth1"]
ROUTER_PUBLIC_MAC = ROUTER_MACS["vr"]["eth2"]

GUEST_BRIDGE = "brguest"
PUBLIC_BRIDGE = "brpub"
# The control segment is a bridge too (KVM's cloud0 is one): with two routers both eth1
# NICs must reach the one control host.
CONTROL_BRIDGE = "brctl"
SECOND_PUBLIC_BRIDGE = "brpub2"
BRIDGES = (GUEST_BRIDGE, PUBLIC_BRIDGE, CONTROL_BRIDGE)

SWITCH_ROLE = "sw"
ROUTER_ROLES = ("vr", "vr2")
VM_ROLES = ("vm1", "vm2")
UPSTREAM_ROLE = "up"
CONTROL_ROLE = "ctl"
SECOND_UPSTREAM_ROLE = "up2"
SHARED_GATEWAY_ROLE = "gw"
PRIVATE_GATEWAY_ROLE = "pgw"
ALL_ROLES = (SWITCH_ROLE, *ROUTER_ROLES, *VM_ROLES, UPSTREAM_ROLE, CONTROL_ROLE, SECOND_UPSTREAM_ROLE,
             SHARED_GATEWAY_ROLE, PRIVATE_GATEWAY_ROLE)

NETNS_DIR = Path("/run/netns")
IP = "ip"
DEFAULT_TIMEOUT = 10.0
STOP_GRACE_SECONDS = 2.0

# sysctls are reset explicitly because a new namespace copies IPv4 settings from the
# host's namespace (net.core.devconf_inherit_init_net=0): without this a host with
# ip_forward=1 or rp_filter=1 would silently change what the lab proves.
# IPv6 is off everywhere so no DAD, RS or MLD packet adds noise to captures and counters.
_NO_IPV6 = {
    "net.ipv6.conf.all.disable_ipv6": "1",
    "net.ipv6.conf.default.disable_ipv6": "1",
}
# A freshly booted kernel's values; the agent sets what a VR needs.
ROUTER_SYSCTLS = {
    **_NO_IPV6,
    "net.ipv4.ip_forward": "0",
    "net.ipv4.conf.all.rp_filter": "0",
    "net.ipv4.conf.default.rp_filter": "0",
    "net.ipv4.conf.all.arp_ignore": "0",
    "net.ipv4.conf.default.arp_ignore": "0",
    "net.ipv4.conf.all.arp_announce": "0",
    "net.ipv4.conf.default.arp_announce": "0",
}
# A dual-stack lab: IPv6 on, and no duplicate address detection, which would hold every
# new address back for a second or two (nothing else on these links could claim one).
_IPV6_ON = {
    "net.ipv6.conf.all.disable_ipv6": "0",
    "net.ipv6.conf.default.disable_ipv6": "0",
    "net.ipv6.conf.all.accept_dad": "0",
    "net.ipv6.conf.default.accept_dad": "0",
}
# Guests configure themselves from the router's advertisements (SLAAC).
_ACCEPT_RA = {"net.ipv6.conf.all.accept_ra": "1", "net.ipv6.conf.default.accept_ra": "1"}
# End hosts never forward, and use strict reverse-path filtering (RFC 3704) so a reply
# that comes back through the wrong place is dropped rather than silently accepted.
HOST_SYSCTLS = {
    **ROUTER_SYSCTLS,
    "net.ipv4.conf.all.rp_filter": "1",
    "net.ipv4.conf.default.rp_filter": "1",
}
# With br_netfilter loaded, bridged frames would otherwise traverse the switch
# namespace's iptables and conntrack; a switch must be dumb.
SWITCH_SYSCTLS = {
    **_NO_IPV6,
    "net.ipv4.ip_forward": "0",
    "net.bridge.bridge-nf-call-iptables": "0",
    "net.bridge.bridge-nf-call-ip6tables": "0",
    "net.bridge.bridge-nf-call-arptables": "0",
}


class LabCommandError(subprocess.CalledProcessError):
    """A lab command failed; unlike CalledProcessError, the message carries stderr."""

    def __str__(self) -> str:
        cmd = shlex.join(self.cmd) if isinstance(self.cmd, list) else str(self.cmd)
        detail = (self.stderr or "").strip()
        return f"{cmd!r} exited {self.returncode}: {detail}"


@dataclass(frozen=True)
class Nic:
    """One NIC of a lab machine: a veth whose peer is a port on a switch bridge."""

    ifname: str
    bridge: str
    mac: str
    addresses: tuple[str, ...] = ()  # "a.b.c.d/len"


@dataclass(frozen=True)
class Node:
    """A lab machine: one namespace, its NICs and its static IP configuration."""

    role: str
    nics: tuple[Nic, ...]
    sysctls: Mapping[str, str] = field(default_factory=dict)
    loopback_addresses: tuple[str, ...] = ()
    default_gateway: str | None = None
    routes: tuple[str, ...] = ()  # more `ip route add` arguments, e.g. "-6 ... via ..."


def build_nodes(routers: int, vm_static_addresses: bool, second_public: bool = False,
                ipv6: bool = False, router_type: str = "router", tiers: int = 0,
                private_gateway: bool = False) -> tuple[Node, ...]:
    """The machines of a lab, as data (pure: nothing is created here). `tiers`: a VPC
    router (router_type="vpcrouter") with that many tiers (1 or 2), one VM (vm1, vm2) in each;
    `private_gateway`: its eth4 and the pgw machine too."""
    if router_type == "vpcrouter":
        nodes = _vpc_nodes(tiers, vm_static_addresses, second_public, routers)
        nodes = _with_private_gateway(nodes) if private_gateway else nodes
        guests6 = tuple(VPC_TIER6_CIDRS[t.device] for t in VPC_TIERS[:tiers])
        return tuple(_with_ipv6(node, guests6) for node in nodes) if ipv6 else nodes
    if router_type == "dhcpsrvr":
        return _shared_network_nodes(vm_static_addresses)
    nodes = _build_nodes(routers, vm_static_addresses, second_public)
    return tuple(_with_ipv6(node) for node in nodes) if ipv6 else nodes


def _with_ipv6(node: Node, guests6: tuple[str, ...] = (GUEST6_CIDR,)) -> Node:
    """A machine of a dual-stack lab: routers get their IPv6 from the agent, VMs from the
    router's advertisements; the upstream holds the router's gateway and routes the
    guest /64 back through the router's public IPv6 (routed, no NAT)."""
    from dataclasses import replace

    sysctls = {**node.sysctls, **_IPV6_ON}
    if node.role in VM_ROLES:
        return replace(node, sysctls={**sysctls, **_ACCEPT_RA})
    if node.role == UPSTREAM_ROLE:
        nic = node.nics[0]
        return replace(node, sysctls=sysctls,
                       nics=(replace(nic, addresses=(*nic.addresses, f"{UPSTREAM_IP6}/64")),),
                       routes=tuple(f"{cidr} via {ROUTER_PUBLIC_IP6}" for cidr in guests6))
    if node.role in ROUTER_ROLES:
        return replace(node, sysctls=sysctls)
    return node


def _build_nodes(routers: int, vm_static_addresses: bool, second_public: bool) -> tuple[Node, ...]:
    nodes = [_router(role, second_public) for role in ROUTER_ROLES[:routers]]
    for role, ip, mac in (("vm1", VM1_IP, VM1_MAC), ("vm2", VM2_IP, VM2_MAC)):
        addresses = (f"{ip}/24",) if vm_static_addresses else ()
        nodes.append(Node(
            role=role,
            nics=(Nic("eth0", GUEST_BRIDGE, mac, addresses),),
            sysctls=HOST_SYSCTLS,
            default_gateway=ROUTER_GUEST_IP if vm_static_addresses else None,
        ))
    nodes.append(Node(
        role=UPSTREAM_ROLE,
        nics=(Nic("eth0", PUBLIC_BRIDGE, UPSTREAM_MAC, (f"{PUBLIC_GATEWAY}/24",)),),
        sysctls=HOST_SYSCTLS,
        loopback_addresses=tuple(f"{ip}/32" for ip in UPSTREAM_SOURCES),
    ))
    nodes.append(Node(
        role=CONTROL_ROLE,
        nics=(Nic("eth0", CONTROL_BRIDGE, CONTROL_HOST_MAC, (f"{CONTROL_HOST_IP}/16",)),),
        sysctls=HOST_SYSCTLS,
    ))
    if second_public:
        prefix = SECOND_PUBLIC_CIDR.split("/")[1]
        nodes.append(Node(
            role=SECOND_UPSTREAM_ROLE,
            nics=(Nic("eth0", SECOND_PUBLIC_BRIDGE, SECOND_UPSTREAM_MAC, (f"{SECOND_PUBLIC_GATEWAY}/{prefix}",)),),
            sysctls=HOST_SYSCTLS,
            loopback_addresses=(f"{SECOND_UPSTREAM_SOURCE}/32",),
        ))
    return tuple(nodes)


def _vpc_nodes(tiers: int, vm_static_addresses: bool, second_public: bool = False,
               routers: int = 1) -> tuple[Node, ...]:
    """A VPC router (eth0 control, eth1 public, eth2+ tiers; eth4 on the second public
    segment with second_public), or a redundant pair of them (vr, vr2), a VM per tier, the
    upstream(s) and the control host."""
    nodes = []
    for role, macs in zip(ROUTER_ROLES[:routers], (VPC_ROUTER_MACS, VPC_ROUTER2_MACS)):
        nics = (Nic("eth0", CONTROL_BRIDGE, macs["eth0"]), Nic("eth1", PUBLIC_BRIDGE, macs["eth1"]))
        nics += tuple(Nic(t.device, t.bridge, macs[t.device]) for t in VPC_TIERS[:tiers])
        if second_public:
            nics += (Nic(VPC_SECOND_PUBLIC_DEVICE, SECOND_PUBLIC_BRIDGE, macs[VPC_SECOND_PUBLIC_DEVICE]),)
        nodes.append(Node(role=role, nics=nics, sysctls=ROUTER_SYSCTLS))
    for role, tier in zip(VM_ROLES, VPC_TIERS[:tiers]):
        addresses = (f"{tier.vm_ip}/{tier.prefix}",) if vm_static_addresses else ()
        nodes.append(Node(role=role, nics=(Nic("eth0", tier.bridge, tier.vm_mac, addresses),),
                          sysctls=HOST_SYSCTLS, default_gateway=tier.router_ip if vm_static_addresses else None))
    return tuple(nodes) + tuple(n for n in _build_nodes(0, vm_static_addresses, second_public)
                                if n.role in (UPSTREAM_ROLE, CONTROL_ROLE, SECOND_UPSTREAM_ROLE))


def _with_private_gateway(nodes: tuple[Node, ...]) -> tuple[Node, ...]:
    """A VPC lab's private gateway segment: the router's eth4 and the pgw machine."""
    from dataclasses import replace

    prefix = PGW_CIDR.split("/")[1]
    pgw = Node(role=PRIVATE_GATEWAY_ROLE,
               nics=(Nic("eth0", PGW_BRIDGE, PGW_HOST_MAC, (f"{PGW_GATEWAY}/{prefix}",)),),
               sysctls=HOST_SYSCTLS, loopback_addresses=(f"{PGW_REMOTE_HOST}/32",),
               routes=(f"{VPC_CIDR} via {PGW_ROUTER_IP}",))
    return tuple(replace(n, nics=(*n.nics, Nic(PGW_DEVICE, PGW_BRIDGE, PGW_ROUTER_MAC))) if n.role in ROUTER_ROLES else n
                 for n in nodes) + (pgw,)


def _shared_network_nodes(vm_static_addresses: bool) -> tuple[Node, ...]:
    """A shared network: the VR (guest and control NICs only), two VMs (vm2 in the alias
    range when static), the network's gateway and the control host."""
    macs = ROUTER_MACS["vr"]
    nodes = [Node(role="vr", nics=(Nic("eth0", GUEST_BRIDGE, macs["eth0"]), Nic("eth1", CONTROL_BRIDGE, macs["eth1"])),
                  sysctls=ROUTER_SYSCTLS)]
    for role, ip, gateway, mac in (("vm1", f"{VM1_IP}/24", SHARED_GATEWAY, VM1_MAC),
                                   ("vm2", f"{ALIAS_VM_IP}/{ALIAS_CIDR.split('/')[1]}", ALIAS_GATEWAY, VM2_MAC)):
        nodes.append(Node(role=role, nics=(Nic("eth0", GUEST_BRIDGE, mac, (ip,) if vm_static_addresses else ()),),
                          sysctls=HOST_SYSCTLS, default_gateway=gateway if vm_static_addresses else None))
    alias_prefix = ALIAS_CIDR.split("/")[1]
    nodes.append(Node(
        role=SHARED_GATEWAY_ROLE,
        nics=(Nic("eth0", GUEST_BRIDGE, SHARED_GATEWAY_MAC,
                  (f"{SHARED_GATEWAY}/24", f"{ALIAS_GATEWAY}/{alias_prefix}")),),
        sysctls=HOST_SYSCTLS,
        loopback_addresses=(f"{SHARED_UPSTREAM_HOST}/32",),
    ))
    nodes.append(Node(
        role=CONTROL_ROLE,
        nics=(Nic("eth0", CONTROL_BRIDGE, CONTROL_HOST_MAC, (f"{CONTROL_HOST_IP}/16",)),),
        sysctls=HOST_SYSCTLS,
    ))
    return tuple(nodes)


def _router(role: str, second_public: bool = False) -> Node:
    macs = ROUTER_MACS[role]
    nics = (
        Nic("eth0", GUEST_BRIDGE, macs["eth0"]),
        Nic("eth1", CONTROL_BRIDGE, macs["eth1"]),
        Nic("eth2", PUBLIC_BRIDGE, macs["eth2"]),
    )
    if second_public:
        nics += (Nic("eth3", SECOND_PUBLIC_BRIDGE, SECOND_PUBLIC_MAC),)
    return Node(role=role, nics=nics, sysctls=ROUTER_SYSCTLS)


def switch_port(role: str, ifname: str) -> str:
    """Name of the bridge port, in the switch namespace, that is cabled to role's ifname."""
    return f"{role}-{ifname}"


class Lab:
    """A replica of a CloudStack isolated-network router (or, with router_type="dhcpsrvr",
    of a shared network's VR and gateway), in network namespaces.

    Example::

        with Lab("demo") as lab:
            lab.run("vr", ["ip", "addr", "add", "192.0.2.1/24", "dev", "eth0"])
            assert ping(lab, "vm1", ROUTER_GUEST_IP)
    """

    def __init__(self, prefix: str = "vrlab", routers: int = 1, vm_static_addresses: bool = True,
                 second_public: bool = False, ipv6: bool = False, router_type: str = "router",
                 tiers: int = 0, private_gateway: bool = False, hotplug: tuple[str, ...] = ()) -> None:
        if routers not in (1, 2):
            raise ValueError(f"routers must be 1 or 2, not {routers}")
        if router_type not in ROUTER_TYPES:
            raise ValueError(f"router_type must be one of {', '.join(ROUTER_TYPES)}, not {router_type!r}")
        if router_type == "vpcrouter":
            tiers = tiers or 2
            if tiers not in (1, 2):
                raise ValueError("a VPC lab has 1 or 2 tiers")
            if second_public and private_gateway:
                raise ValueError("the lab's second public NIC and its private gateway are both eth4: one or the other")
        elif tiers or private_gateway:
            raise ValueError("tiers and a private gateway are for router_type='vpcrouter'")
        if router_type == "dhcpsrvr" and (routers != 1 or second_public or ipv6):
            raise ValueError("a shared network's lab (dhcpsrvr) has one router, no public side and no IPv6")
        self.router_type = router_type
        self.tiers = tiers
        self.private_gateway = private_gateway
        if not prefix or "/" in prefix or len(f"{prefix}-vr2") > 64:
            raise ValueError(f"unusable namespace prefix {prefix!r}")
        self.prefix = prefix
        self.routers = routers
        self.vm_static_addresses = vm_static_addresses
        self.second_public = second_public
        self.ipv6 = ipv6
        self.nodes = build_nodes(routers, vm_static_addresses, second_public, ipv6, router_type, tiers,
                                 private_gateway)
        # Router NICs a hypervisor hot-plugs after boot: absent at up(), made by plug() (lab/hotplug.py).
        known = {nic.ifname for node in self.nodes if node.role in ROUTER_ROLES for nic in node.nics}
        if set(hotplug) - known:
            raise ValueError(f"hotplug names NICs the routers lack: {sorted(set(hotplug) - known)}")
        self.hotplug = tuple(hotplug)
        self.roles: tuple[str, ...] = (SWITCH_ROLE, *(node.role for node in self.nodes))
        self._processes: list[subprocess.Popen[Any]] = []

    def __repr__(self) -> str:
        if self.tiers:
            pgw = ", private_gateway=True" if self.private_gateway else ""
            return f"Lab(prefix={self.prefix!r}, router_type={self.router_type!r}, tiers={self.tiers}{pgw})"
        return f"Lab(prefix={self.prefix!r}, routers={self.routers}, router_type={self.router_type!r})"

    def __enter__(self) -> Lab:
        self.up()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.down()

    # --- names ---

    def ns(self, role: str) -> str:
        """The namespace name of a role ("vr", "vm1", ...)."""
        if role not in ALL_ROLES:
            raise ValueError(f"unknown lab role {role!r}; roles are {', '.join(ALL_ROLES)}")
        return f"{self.prefix}-{role}"

    def exists(self) -> bool:
        """True when every namespace of this lab exists."""
        return all((NETNS_DIR / self.ns(role)).exists() for role in self.roles)

    # --- lifecycle ---

    def up(self) -> None:
        """Build the lab, first removing any leftovers of a lab with the same prefix."""
        self._remove_namespaces(ALL_ROLES)
        try:
            self._ip_batch(None, [f"netns add {self.ns(role)}" for role in self.roles])
            self._set_sysctls(SWITCH_ROLE, SWITCH_SYSCTLS)
            for node in self.nodes:
                self._set_sysctls(node.role, node.sysctls)
            self._ip_batch(SWITCH_ROLE, self._switch_commands())
            for node in self.nodes:
                self._ip_batch(node.role, _node_commands(node, self.boot_nics(node)))
        except BaseException:
            self.down()
            raise

    def down(self) -> None:
        """Stop every process of the lab (by PID) and delete its namespaces.

        Processes the lab did not start itself (daemons the agent spawned inside the
        router) are found by their network namespace, so none can keep a namespace,
        and with it a veth, alive after its name is gone.
        """
        for process in list(self._processes):
            self.terminate(process)
        self._remove_namespaces(ALL_ROLES)

    def _remove_namespaces(self, roles: Sequence[str]) -> None:
        names = [self.ns(role) for role in roles if (NETNS_DIR / self.ns(role)).exists()]
        if not names:
            return
        # Again while any are left: a process being stopped may start another (a supervisor,
        # keepalived's notify script leaving the pair), which the first scan did not see.
        for _ in range(10):
            pids = pids_in_namespaces(names)
            if not pids:
                break
            _stop_pids(pids)
        # -force: keep deleting the others if one disappeared meanwhile.
        subprocess.run([IP, "-force", "-batch", "-"], input="".join(f"netns del {n}\n" for n in names),
                       capture_output=True, text=True, timeout=DEFAULT_TIMEOUT, check=False)

    # --- running things inside ---

    def command(self, role: str, argv: Sequence[str]) -> list[str]:
        """The argv that runs argv inside role's namespace."""
        return [IP, "netns", "exec", self.ns(role), *argv]

    def run(self, role: str, argv: Sequence[str], check: bool = True, timeout: float = DEFAULT_TIMEOUT,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run argv inside role's namespace and wait for it (text output captured)."""
        argv = self.command(role, argv)
        result = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout, check=False)
        if check and result.returncode != 0:
            raise LabCommandError(result.returncode, argv, result.stdout, result.stderr)
        return result

    def popen(self, role: str, argv: Sequence[str], **popen_kwargs: Any) -> subprocess.Popen[Any]:
        """Start argv inside role's namespace; down() (or terminate()) stops it by PID.

        stdin/stdout/stderr default to /dev/null; pass subprocess.PIPE to talk to it.
        """
        for stream in ("stdin", "stdout", "stderr"):
            popen_kwargs.setdefault(stream, subprocess.DEVNULL)
        # Own session: a Ctrl-C aimed at pytest must not reach lab daemons half-way.
        popen_kwargs.setdefault("start_new_session", True)
        # `ip netns exec` execs argv in place, so process.pid is the program's own PID.
        process = subprocess.Popen(self.command(role, argv), **popen_kwargs)
        self._processes.append(process)
        _wait_until_inside(process, self.ns(role))
        return process

    def terminate(self, process: subprocess.Popen[Any], grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop one process started by popen(): SIGTERM, then SIGKILL after grace seconds."""
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=grace)
        for stream in (process.stdin, process.stdout, process.stderr):
            if stream is not None:
                stream.close()
        if process in self._processes:
            self._processes.remove(process)

    @property
    def tracked_pids(self) -> list[int]:
        """PIDs of the processes popen() started that are still tracked."""
        return [process.pid for process in self._processes]

    def pids(self) -> list[int]:
        """Every process currently inside any namespace of this lab."""
        names = [self.ns(role) for role in self.roles if (NETNS_DIR / self.ns(role)).exists()]
        return sorted(pids_in_namespaces(names))

    def describe(self) -> str:
        """Addresses and routes of every machine: a snapshot for failing-test reports."""
        sections = []
        for role in self.roles:
            if not (NETNS_DIR / self.ns(role)).exists():
                sections.append(f"== {role}: no namespace")
                continue
            addresses = self.run(role, [IP, "-br", "addr"], check=False).stdout
            routes = self.run(role, [IP, "route"], check=False).stdout
            sections.append(f"== {role} ({self.ns(role)})\n{addresses}{routes}")
        return "\n".join(sections)

    # --- building blocks ---

    def _switch_commands(self) -> list[str]:
        commands = ["link set lo up"]
        # No STP and no IGMP snooping: a dumb switch that floods VRRP/conntrackd multicast
        # and forwards from the first frame.
        extra = (SECOND_PUBLIC_BRIDGE,) if self.second_public else ()
        extra += tuple(tier.bridge for tier in VPC_TIERS[:self.tiers])
        extra += (PGW_BRIDGE,) if self.private_gateway else ()
        for bridge in BRIDGES + extra:
            commands += [f"link add {bridge} type bridge stp_state 0 mcast_snooping 0",
                         f"link set {bridge} up"]
        for node in self.nodes:
            for nic in self.boot_nics(node):
                port = switch_port(node.role, nic.ifname)
                commands += [
                    f"link add {port} type veth peer name {nic.ifname} address {nic.mac} netns {self.ns(node.role)}",
                    f"link set {port} master {nic.bridge} up",
                ]
        return commands

    def boot_nics(self, node: Node) -> tuple[Nic, ...]:
        """The NICs a machine has when the lab comes up: all but the routers' hot-plugged ones."""
        if node.role not in ROUTER_ROLES:
            return node.nics
        return tuple(nic for nic in node.nics if nic.ifname not in self.hotplug)

    def _set_sysctls(self, role: str, sysctls: Mapping[str, str]) -> None:
        # -e: the bridge-nf keys exist only while br_netfilter is loaded.
        assignments = [f"{key}={value}" for key, value in sysctls.items()]
        self.run(role, ["sysctl", "-q", "-e", "-w", *assignments])

    def _ip_batch(self, role: str | None, commands: Sequence[str]) -> None:
        """Run ip commands in one process (one fork instead of dozens)."""
        argv = [IP, "-batch", "-"] if role is None else [IP, "-n", self.ns(role), "-batch", "-"]
        text = "".join(f"{command}\n" for command in commands)
        result = subprocess.run(argv, input=text, capture_output=True, text=True,
                                timeout=DEFAULT_TIMEOUT, check=False)
        if result.returncode != 0:
            # ip names the failing line ("Command failed -:7"); show the input numbered.
            numbered = "".join(f"{n:3d}  {line}\n" for n, line in enumerate(commands, 1))
            raise LabCommandError(result.returncode, argv, result.stdout, f"{result.stderr}\n{numbered}")


def _node_commands(node: Node, nics: Sequence[Nic]) -> list[str]:
    commands = ["link set lo up"]
    for address in node.loopback_addresses:
        commands.append(f"addr add {address} dev lo")
    for nic in nics:
        commands.append(f"link set {nic.ifname} up")
        commands += [f"addr add {address} dev {nic.ifname}" for address in nic.addresses]
    if node.default_gateway:
        commands.append(f"route add default via {node.default_gateway}")
    commands += [f"route add {route}" for route in node.routes]
    return commands


def pids_in_namespaces(names: Sequence[str]) -> set[int]:
    """PIDs of processes whose network namespace is one of the named ones.

    The same test `ip netns pids` makes, done once for all names in one /proc scan.
    """
    wanted = set()
    for name in names:
        try:
            info = os.stat(NETNS_DIR / name)
        except FileNotFoundError:
            continue
        wanted.add((info.st_dev, info.st_ino))
    found = set()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            info = os.stat(f"/proc/{entry.name}/ns/net")
        except OSError:  # exited meanwhile, a zombie, or a kernel thread
            continue
        if (info.st_dev, info.st_ino) in wanted:
            found.add(int(entry.name))
    found.discard(os.getpid())
    return found


def _wait_until_inside(process: subprocess.Popen[Any], name: str, timeout: float = STOP_GRACE_SECONDS) -> None:
    """Return once process has entered namespace name (or exited).

    Until `ip netns exec` has called setns(), the new process is still in the caller's
    namespace, where a namespace scan (pids(), a later up()) would miss it.
    """
    target = os.stat(NETNS_DIR / name)
    deadline = time.monotonic() + timeout
    while process.poll() is None and time.monotonic() < deadline:
        try:
            current = os.stat(f"/proc/{process.pid}/ns/net")
        except OSError:
            current = None
        if current is not None and (current.st_dev, current.st_ino) == (target.st_dev, target.st_ino):
            return
        time.sleep(0.001)


def _stop_pids(pids: set[int], grace: float = STOP_GRACE_SECONDS) -> None:
    """SIGTERM the given PIDs, then SIGKILL whatever is still alive after grace seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while (pids := {pid for pid in pids if _is_alive(pid)}) and time.monotonic() < deadline:
            time.sleep(0.01)
        if not pids:
            return


def _is_alive(pid: int) -> bool:
    """True unless the process is gone or a zombie (a zombie holds no namespace)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state follows the parenthesised command name, which may itself contain ")".
    return stat[stat.rfind(")") + 2] != "Z"
