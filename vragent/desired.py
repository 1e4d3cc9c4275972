"""The contracts between the phases: what render produces (Desired: tables, sysctls, links,
files, daemons) and what observe reports (Observed), which the planner compares. Pure data:
renderers build these, the planner reads them, only the shell turns them into actions."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address, IPv4Interface, IPv6Address
from pathlib import Path

from vragent.tables import TableSpec, is_owned
from vragent.values import Link, Route, Rule


# -- links and policy routing (subsystems/network) -------------------------------------------

@dataclass(frozen=True)
class PolicyRouting:
    devices: tuple[str, ...] = ()  # public NICs with their own table, in device order
    rules: frozenset[Rule] = frozenset()
    routes: frozenset[Route] = frozenset()

    def without_gateways(self) -> "PolicyRouting":
        """For a NIC kept down (a redundant BACKUP): the kernel refuses, and drops, routes
        via a gateway on a down link; rules and throw routes stay, so nothing else moves."""
        return replace(self, routes=frozenset(r for r in self.routes if r.gateway is None))


@dataclass(frozen=True)
class LinkPlan:
    # device -> addresses; only devices listed here are managed (others are never touched)
    addresses: dict[str, tuple[IPv4Interface, ...]]
    default_route: tuple[IPv4Address, str] | None
    mtu: dict[str, int]
    public: frozenset[IPv4Interface]  # addresses that announce themselves with gratuitous ARP
    # NICs whose admin state is set (device -> up): every NIC holding an address is brought up
    # (a hot-plugged NIC appears administratively down), before its addresses and routes are
    # used; a redundant pair's role decides its public NICs (subsystems/vrrp/render.py).
    # Addresses keepalived owns are never added nor removed by the plan (device -> addresses).
    admin_up: dict[str, bool] = field(default_factory=dict)
    foreign: dict[str, frozenset[IPv4Interface]] = field(default_factory=dict)
    policy: PolicyRouting = field(default_factory=PolicyRouting)
    # A dual-stack router's IPv6 default route (gateway, device); its addresses are in `addresses`.
    default_route6: tuple[IPv6Address, str] | None = None
    # A VPC router's static routes in the main table (subsystems/network/static_routes.py).
    static_routes: frozenset[Route] = frozenset()
    # The router's IPv6 went away (ipv6.rules.withdraw): its IPv6 default route goes too.
    withdraw_route6: bool = False


# -- daemons and the whole desired router ------------------------------------------------------

@dataclass
class DaemonDesired:
    """What one daemon should run with. `files` maps path -> (content or None to remove,
    mode); a change to a `restart_files` member needs a restart, any other change only
    the reload action (a signal the daemon re-reads its files on)."""

    service: str  # its ServiceSpec's name (the engine binds names to specs: Desired.runtime)
    enabled: bool
    files: dict[Path, tuple[str | None, int]]
    restart_files: frozenset[Path] = frozenset()
    checker: object = None
    reload_action: str = "reload"
    # Written only before the daemon's first start (never under a running daemon), e.g. leases.
    seed_files: dict[Path, tuple[str, int]] = field(default_factory=dict)
    # Directories only this daemon's files live in: a file there that `files` does not
    # name is removed (certificates of load balancers that are gone).
    owned_dirs: tuple[Path, ...] = ()
    # Configured but not running: a redundant router that is not PRIMARY keeps the files of
    # its primary-only daemons (dnsmasq, HAProxy) current and the daemons stopped.
    standby: bool = False


@dataclass
class Desired:
    tables: dict[str, TableSpec]
    sysctls: dict[str, str]
    links: LinkPlan
    files: dict[Path, tuple[str | None, int]]  # path -> (content or None to remove, mode)
    daemons: list[DaemonDesired] = field(default_factory=list)
    # How daemons are run (shell.services.Runtime: the backend, the specs by name, their
    # hooks); bound by the engine after render, which knows nothing of the OS.
    runtime: object = None


# -- what observe saw (shell/observe.py reads it; the planner compares with it) -----------------

@dataclass
class ObservedTable:
    name: str
    # The table exactly as iptables-save printed it (for rollback); None for a remembered
    # view, which holds only what vragent manages (its chains, its jumps, its policies).
    save_text: str | None
    policies: dict[str, str] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)  # every chain, built-in and user
    family: int = 4  # 6: read with ip6tables-save (subsystems/ipv6/rules.py)

    @classmethod
    def empty(cls, name: str) -> "ObservedTable":
        """A table the kernel has never loaded: nothing in it, restored as nothing."""
        return cls(name, f"*{name}\nCOMMIT\n")

    def owned_chains(self) -> dict[str, list[str]]:
        return {name: rules for name, rules in self.chains.items() if is_owned(name)}


def parse_iptables_save(text: str) -> dict[str, ObservedTable]:
    tables: dict[str, ObservedTable] = {}
    current: ObservedTable | None = None
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("*"):
            current = ObservedTable(line[1:], "")
            lines = [line]
        elif current is None or line.startswith("#"):
            continue
        elif line == "COMMIT":
            lines.append(line)
            current.save_text = "\n".join(lines) + "\n"
            tables[current.name] = current
            current = None
        else:
            lines.append(line)
            if line.startswith(":"):
                name, policy = line[1:].split()[:2]
                current.chains.setdefault(name, [])
                if policy != "-":
                    current.policies[name] = policy
            elif line.startswith("-A "):
                chain = line.split(" ", 2)[1]
                current.chains.setdefault(chain, []).append(line)
    return tables


@dataclass
class Observed:
    tables: dict[str, ObservedTable]
    sysctls: dict[str, str | None]
    links: dict[str, Link]
    addresses: dict[str, set[IPv4Interface]]
    default_route: tuple[IPv4Address, str] | None
    read_only_sysctls: set[str]
    files: dict[str, str | None] = field(default_factory=dict)  # path -> content
    running: dict[str, int | None] = field(default_factory=dict)  # service name -> pid
    # service name -> an action an interrupted apply owes it (shell/owed.py): its files are
    # in place, the daemon may not have taken them.
    owed: dict[str, str] = field(default_factory=dict)
    # Policy routing vragent owns (subsystems/network/routing.py): its rules, and the routes of its tables.
    policy_rules: set[Rule] = field(default_factory=set)
    policy_routes: set[Route] = field(default_factory=set)
    default_route6: tuple[IPv6Address, str] | None = None  # read only for a dual-stack router
    # A VPC's static routes vragent owns in the main table (subsystems/network/static_routes.py).
    static_routes: set[Route] = field(default_factory=set)
