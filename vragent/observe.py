"""Read-only view of the running router: netfilter tables, sysctls, links, addresses, routes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface, IPv6Address

from vragent import netlink, runner
from vragent.render.netfilter import IP6_TABLES, TABLES, is_owned, kernel_table


@dataclass
class ObservedTable:
    name: str
    # The table exactly as iptables-save printed it (for rollback); None for a remembered
    # view, which holds only what vragent manages (its chains, its jumps, its policies).
    save_text: str | None
    policies: dict[str, str] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)  # every chain, built-in and user
    family: int = 4  # 6: read with ip6tables-save (render/netfilter6.py)

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


def iptables_tables(only: set[str] | None = None, known: dict[str, ObservedTable] | None = None
                    ) -> dict[str, ObservedTable]:
    """All tables with one fork; a table the kernel has never loaded is reported empty.

    With `only`, just those tables are read again and the rest taken from `known` (the
    verification after a commit re-reads what the commit touched); with `known` alone,
    nothing is read (tables remembered as verified, see memo.TablesMemo).
    """
    if known is not None and only is None:
        return known
    if only is not None:
        only = {name for name in only if name in TABLES}  # IPv6 tables: ip6tables_tables()
    if only is not None and known is not None:
        tables = dict(known)
        if len(only) == 1:
            tables.update(parse_iptables_save(runner.run(["iptables-save", "-t", next(iter(only))]).stdout))
        elif only:  # one fork for all: nf_tables lists the whole ruleset for any table anyway
            read = parse_iptables_save(runner.run(["iptables-save"]).stdout)
            tables.update({name: read.get(name) or ObservedTable.empty(name) for name in only})
        return tables
    text = runner.run(["iptables-save"]).stdout
    tables = parse_iptables_save(text)
    for name in TABLES:
        if name not in tables:
            tables[name] = ObservedTable.empty(name)
    return tables


def ip6tables_tables(only: set[str] | None = None, known: dict[str, ObservedTable] | None = None
                     ) -> dict[str, ObservedTable]:
    """The IPv6 tables vragent manages (IP6_TABLES, by key), on the same terms as
    iptables_tables(): taken from `known` unless absent there or named in `only`."""
    tables: dict[str, ObservedTable] = {}
    missing = []
    for key in IP6_TABLES:
        if known is not None and key in known and (only is None or key not in only):
            tables[key] = known[key]
        else:
            missing.append(key)
    for key in missing:
        name = kernel_table(key)[0]
        read = parse_iptables_save(runner.run(["ip6tables-save", "-t", name]).stdout)
        table = read.get(name) or ObservedTable.empty(name)
        table.family = 6
        tables[key] = table
    return tables


def remembered_tables(payload: dict) -> dict[str, ObservedTable]:
    """The tables as memo.TablesMemo remembers them verified: vragent's part of each."""
    def view(key: str) -> ObservedTable:
        policies, jumps, chains = payload.get(key, ({}, {}, {}))
        name, family = kernel_table(key)
        return ObservedTable(name, None, dict(policies), {**jumps, **chains}, family)

    # An IPv6 table absent from the payload was not managed when remembered: read when wanted.
    return {key: view(key) for key in (*TABLES, *(key for key in IP6_TABLES if key in payload))}


def reread_chains(known: ObservedTable, chains) -> ObservedTable:
    """`known` with these chains read again (`iptables -S`, one fork each: a chain of a few
    hundred rules reads in milliseconds, where iptables-save reads every rule of the table)."""
    table = ObservedTable(known.name, None, dict(known.policies), dict(known.chains), known.family)
    tool = "ip6tables" if known.family == 6 else "iptables"
    for chain in sorted(chains):
        listed = runner.run([tool, "-w", "-t", known.name, "-S", chain], check=False)
        table.chains.pop(chain, None)
        table.policies.pop(chain, None)
        if listed.returncode != 0:
            continue  # no such chain (any other failure also fails the verification)
        rules = table.chains[chain] = []
        for line in listed.stdout.splitlines():
            if line.startswith("-A "):
                rules.append(line)
            elif line.startswith("-P "):
                table.policies[chain] = line.split()[2]
    return table


def read_sysctl(key: str) -> str | None:
    from vragent.render.sysctl import proc_path

    try:
        with open(proc_path(key)) as handle:
            return " ".join(handle.read().split())
    except OSError:
        return None


def sysctl_read_only(key: str) -> bool:
    """Global-only keys (conntrack sizing) are exposed read-only (0444) inside a
    non-initial network namespace; writing them there fails."""
    from vragent.render.sysctl import proc_path

    try:
        return not os.stat(proc_path(key)).st_mode & 0o222
    except OSError:
        return False


@dataclass
class Observed:
    tables: dict[str, ObservedTable]
    sysctls: dict[str, str | None]
    links: dict[str, netlink.Link]
    addresses: dict[str, set[IPv4Interface]]
    default_route: tuple[IPv4Address, str] | None
    read_only_sysctls: set[str]
    files: dict[str, str | None] = field(default_factory=dict)  # path -> content
    running: dict[str, int | None] = field(default_factory=dict)  # service name -> pid
    # Policy routing vragent owns (render/routing.py): its rules, and the routes of its tables.
    policy_rules: set[netlink.Rule] = field(default_factory=set)
    policy_routes: set[netlink.Route] = field(default_factory=set)
    default_route6: tuple[IPv6Address, str] | None = None  # read only for a dual-stack router
    # A VPC's static routes vragent owns in the main table (render/static_routes.py).
    static_routes: set[netlink.Route] = field(default_factory=set)


def observe(sysctl_keys, file_paths=(), daemons=(), backend=None, links_and_addresses=None,
            tables_only: set[str] | None = None, known_tables: dict[str, ObservedTable] | None = None,
            tables: bool = True, ipv6_tables: bool = False, ipv6_route: bool = False) -> Observed:
    from vragent import files

    from vragent.render import routing

    links, addresses = links_and_addresses or netlink.links_and_addresses()
    rules, routes = netlink.policy_routing(routing.owned_tables(links) | {netlink.MAIN_TABLE})
    static_routes = {route for route in routes if route.table == netlink.MAIN_TABLE}
    routes -= static_routes
    observed_tables = iptables_tables(tables_only, known_tables) if tables else {}
    if ipv6_tables:
        observed_tables = {**observed_tables, **ip6tables_tables(tables_only, known_tables)}
    return Observed(
        tables=observed_tables,
        sysctls={key: read_sysctl(key) for key in sysctl_keys},
        links=links,
        addresses=addresses,
        default_route=netlink.default_route(),
        read_only_sysctls={key for key in sysctl_keys if sysctl_read_only(key)},
        files={str(path): files.read_text(path) for path in file_paths},
        running=backend.running_all(daemons) if daemons else {},
        policy_rules={rule for rule in rules if routing.owns_rule(rule)},
        policy_routes=routes,
        static_routes=static_routes,
        default_route6=netlink.default_route6() if ipv6_route else None,
    )


def files_in(directory) -> list:
    """Regular files directly in `directory` (none if it does not exist), without vragent's
    own candidates (*.new), rejected candidates (*.failed) and temporary files (.*)."""
    from pathlib import Path

    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [Path(e.path) for e in entries if e.is_file(follow_symlinks=False) and not e.name.startswith(".")
            and not e.name.endswith((".new", ".failed"))]
