"""Read-only view of the running router: netfilter tables, sysctls, links, addresses, routes."""

from __future__ import annotations

import os

from vragent.shell import netlink, runner
from vragent.tables import IP6_TABLES, TABLES, kernel_table
from vragent.tables import MAIN_TABLE, owned_tables, owns_rule
from vragent.desired import Observed, ObservedTable, parse_iptables_save


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
    from vragent.paths import proc_path

    try:
        with open(proc_path(key)) as handle:
            return " ".join(handle.read().split())
    except OSError:
        return None


def sysctl_read_only(key: str) -> bool:
    """Global-only keys (conntrack sizing) are exposed read-only (0444) inside a
    non-initial network namespace; writing them there fails."""
    from vragent.paths import proc_path

    try:
        return not os.stat(proc_path(key)).st_mode & 0o222
    except OSError:
        return False


def observe(sysctl_keys, file_paths=(), daemons=(), backend=None, links_and_addresses=None,
            tables_only: set[str] | None = None, known_tables: dict[str, ObservedTable] | None = None,
            tables: bool = True, ipv6_tables: bool = False, ipv6_route: bool = False) -> Observed:
    from vragent.shell import files


    links, addresses = links_and_addresses or netlink.links_and_addresses()
    rules, routes = netlink.policy_routing(owned_tables(links) | {MAIN_TABLE})
    static_routes = {route for route in routes if route.table == MAIN_TABLE}
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
        running={spec.name: backend.running(spec) for spec in daemons},
        policy_rules={rule for rule in rules if owns_rule(rule)},
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
