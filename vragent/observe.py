"""Read-only view of the running router: netfilter tables, sysctls, links, addresses, routes."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface

from vragent import netlink, runner
from vragent.render.netfilter import TABLES, is_owned


@dataclass
class ObservedTable:
    name: str
    save_text: str  # the table exactly as iptables-save printed it (for rollback)
    policies: dict[str, str] = field(default_factory=dict)
    chains: dict[str, list[str]] = field(default_factory=dict)  # every chain, built-in and user

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
    verification after a commit re-reads what the commit touched).
    """
    if only is not None and known is not None:
        tables = dict(known)
        for name in sorted(only):
            tables.update(parse_iptables_save(runner.run(["iptables-save", "-t", name]).stdout))
        return tables
    text = runner.run(["iptables-save"]).stdout
    tables = parse_iptables_save(text)
    for name in TABLES:
        if name not in tables:
            tables[name] = ObservedTable(name, f"*{name}\nCOMMIT\n")
    return tables


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


def observe(sysctl_keys, file_paths=(), daemons=(), backend=None, links_and_addresses=None,
            tables_only: set[str] | None = None, known_tables: dict[str, ObservedTable] | None = None) -> Observed:
    from vragent import files

    links, addresses = links_and_addresses or netlink.links_and_addresses()
    return Observed(
        tables=iptables_tables(tables_only, known_tables),
        sysctls={key: read_sysctl(key) for key in sysctl_keys},
        links=links,
        addresses=addresses,
        default_route=netlink.default_route(),
        read_only_sysctls={key for key in sysctl_keys if sysctl_read_only(key)},
        files={str(path): files.read_text(path) for path in file_paths},
        running={spec.name: backend.running(spec) for spec in daemons},
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
