"""The steps a plan is made of. Each can describe itself (for --dry-run), check its
candidate, commit, and roll back what it committed."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from vragent.values import Route, Rule


class Step:
    kind = "step"
    reversible = True
    # The commit itself is all-or-nothing and its check only rehearses it (iptables-restore
    # --test): when nothing is committed before it, a failing commit leaves nothing to undo.
    commit_is_its_own_check = False

    def summary(self) -> str:
        raise NotImplementedError

    def diff(self) -> str:
        return self.summary() + "\n"


@dataclass
class SysctlStep(Step):
    key: str
    old: str | None
    new: str
    kind = "sysctl"

    def summary(self) -> str:
        return f"sysctl {self.key}: {self.old} -> {self.new}"



@dataclass
class MtuStep(Step):
    device: str
    old: int
    new: int
    kind = "link"

    def summary(self) -> str:
        return f"link {self.device} mtu {self.old} -> {self.new}"


@dataclass
class AddressStep(Step):
    device: str
    interface: IPv4Interface
    add: bool
    kind = "address"

    def summary(self) -> str:
        return f"address {'+' if self.add else '-'} {self.interface} dev {self.device}"


@dataclass
class LinkStateStep(Step):
    """A NIC administratively up or down (a redundant pair's public NIC follows the VRRP role)."""

    device: str
    up: bool
    kind = "link"

    def summary(self) -> str:
        return f"link {self.device} {'up' if self.up else 'down'}"


def _route_text(route) -> str:
    return "none" if route is None else f"default via {route[0]} dev {route[1]}"


@dataclass
class RouteStep(Step):
    old: tuple[IPv4Address, str] | None
    new: tuple[IPv4Address, str] | None
    family: int = 4  # 6: the IPv6 default route
    kind = "route"

    def summary(self) -> str:
        return f"route{' -6' if self.family == 6 else ''} {_route_text(self.old)} -> {_route_text(self.new)}"


@dataclass
class PolicyRuleStep(Step):
    """One policy rule added or deleted (subsystems/network/routing.py)."""

    rule: Rule
    add: bool
    kind = "rule"

    def summary(self) -> str:
        return f"ip rule {'+' if self.add else '-'} {self.rule}"


@dataclass
class TableRouteStep(Step):
    """One route of a policy routing table added or deleted (subsystems/network/routing.py)."""

    route: Route
    add: bool
    kind = "route"

    def summary(self) -> str:
        return f"route {'+' if self.add else '-'} {self.route}"


@dataclass
class IptablesStep(Step):
    """One table, one iptables-restore transaction: the kernel swaps it atomically."""

    table: str
    script: str  # iptables-restore --noflush input
    rollback_text: str | None  # the whole table as it was (iptables-save), restored with -T
    running_view: str
    desired_view: str
    touched_chains: frozenset[str] = frozenset()  # read back by the verification
    # Without the table's iptables-save text (planned against remembered tables): the
    # iptables-restore --noflush input that puts the touched chains back.
    undo_script: str | None = None
    family: int = 4  # 6: the table is ip6tables' (`table` is then its key, e.g. filter6)
    kind = "iptables"
    commit_is_its_own_check = True

    @property
    def _tool(self) -> str:
        return "ip6tables" if self.family == 6 else "iptables"

    @property
    def _restore_tool(self) -> str:
        return f"{self._tool}-restore"

    @property
    def _kernel_table(self) -> str:
        from vragent.tables import kernel_table

        return kernel_table(self.table)[0]

    def summary(self) -> str:
        ops = sum(1 for line in self.script.splitlines() if line[:2] in ("-A", "-I", "-D", "-F", "-X", "-P", ":v"))
        return f"{self._tool} {self._kernel_table}: {ops} change(s) in one transaction"

    def diff(self) -> str:
        import difflib

        return "".join(difflib.unified_diff(
            self.running_view.splitlines(keepends=True), self.desired_view.splitlines(keepends=True),
            fromfile=f"{self._tool}/{self._kernel_table} (running)",
            tofile=f"{self._tool}/{self._kernel_table} (desired)"))



def numbered_context(script: str, error: str, radius: int = 3) -> str:
    """The restore input around the line iptables-restore complained about, numbered."""
    import re

    found = re.search(r"line:? (\d+)", error)
    lines = script.splitlines()
    if not found:
        return ""
    failing = int(found.group(1))
    start, end = max(1, failing - radius), min(len(lines), failing + radius)
    return "\n".join(f"{'>' if n == failing else ' '}{n:5d} {lines[n - 1]}" for n in range(start, end + 1))


@dataclass
class FileStep(Step):
    path: Path
    old: str | None
    new: str | None  # None: remove
    mode: int = 0o644
    kind = "file"

    def summary(self) -> str:
        verb = "write" if self.old is None else ("remove" if self.new is None else "update")
        return f"file {verb} {self.path}"

    def diff(self) -> str:
        if not self.mode & 0o044:
            # Private keys and the like: say that it changes, never what it holds.
            return f"{self.summary()} (private, mode {self.mode:04o}; content not shown)\n"
        import difflib

        return "".join(difflib.unified_diff(
            (self.old or "").splitlines(keepends=True), (self.new or "").splitlines(keepends=True),
            fromfile=f"{self.path} (running)", tofile=f"{self.path} (desired)"))


@dataclass
class ConntrackDeleteStep(Step):
    """Forget the flows of a revoked NAT rule, and only those (never a full flush)."""

    filters: list[list[str]]
    reason: str
    kind = "conntrack"
    reversible = False

    def summary(self) -> str:
        return f"conntrack delete flows of {self.reason}"


@dataclass
class GratuitousArpStep(Step):
    device: str
    ip: IPv4Address
    kind = "arp"
    reversible = False

    def summary(self) -> str:
        return f"gratuitous ARP for {self.ip} on {self.device}"


@dataclass
class DaemonStep(Step):
    """A daemon's files and the cheapest safe action that makes it use them.

    check(): candidates are written beside the live files (`<name>.new`) and run through
    the daemon's own checker; a rejected candidate stays as `<name>.failed` and nothing
    live changes. commit(): candidates are renamed into place, then the daemon is started,
    signalled (re-reads without a restart), reloaded or restarted, or stopped.
    rollback(): the old files come back and the same action makes the daemon use them.
    """

    service: object  # services.ServiceSpec
    backend: object  # services.Backend
    changes: list[tuple[Path, str | None, str | None, int]]  # (path, old, new, mode)
    action: str  # start | reload | restart | stop | none
    reason: str
    checker: object = None  # callable(dict[live path -> candidate path]) -> argv, or None
    was_running: bool = False
    hooks: object = None  # before(action) / after(action) around each action, or None
    owed_record: object = None  # Path of the service's owed-action record (shell/owed.py), or None
    kind = "service"

    def summary(self) -> str:
        return f"{self.service.name}: {self.action} ({self.reason})"

    def diff(self) -> str:
        text = "".join(FileStep(path, old, new, mode).diff() for path, old, new, mode in self.changes)
        return text + f"service {self.service.name}: {self.action} ({self.reason})\n"


@dataclass
class DhcpReleaseStep(Step):
    """Tell dnsmasq a VM's lease is over (dhcp_release sends it a DHCPRELEASE)."""

    device: str
    ip: IPv4Address
    mac: str
    kind = "dhcp"
    reversible = False

    def summary(self) -> str:
        return f"release lease {self.ip} of {self.mac} on {self.device}"
@dataclass
class PasswordHandoverStep(Step):
    """Hand VMs' new passwords to the password server (its file; see shell/passwordfile.py).

    No HTTP POST to a server that may not listen yet: the file is the handover, the server
    re-reads it on its next request. Rollback puts back what those VMs had before. Neither
    the summary nor the diff shows a password."""

    path: Path
    passwords: dict[str, str | None] = field(repr=False)  # None: withdraw
    previous: dict[str, str | None] = field(default_factory=dict, repr=False)
    # The incumbent's passwords-<address> files to keep (passwordfile.write_views): file -> CIDRs.
    views: dict[str, list[str]] = field(default_factory=dict)
    kind = "password"

    def summary(self) -> str:
        offered = sorted(ip for ip, password in self.passwords.items() if password is not None)
        withdrawn = sorted(ip for ip, password in self.passwords.items() if password is None)
        parts = ([f"new password for {', '.join(offered)} (not shown)"] if offered else []) + \
                ([f"no password pending for {', '.join(withdrawn)}"] if withdrawn else [])
        return f"password server: {'; '.join(parts)}"


@dataclass
class VpnSessionStep(Step):
    """End the remote-access VPN sessions of users that were removed (or whose password
    changed): their pppd is found in pppd's session database (subsystems/vpn/render.py) and sent
    SIGTERM, which hangs the session up. Other users' sessions are not touched."""

    db: Path
    users: tuple[str, ...]
    kind = "vpn"
    reversible = False

    def summary(self) -> str:
        return f"vpn: end the sessions of {', '.join(self.users)}"


def sessions_of(dump: str, users: tuple[str, ...]) -> list[int]:
    """PIDs of the pppd sessions of `users`, from `tdbdump` of pppd's database.

    pppd stores each session's script environment as one record ("NAME=value;" pairs,
    PEERNAME the authenticated user, PPPD_PID its pid)."""
    import re

    wanted = set(users)
    pids = []
    for record in re.findall(r'data\(\d+\) = "(.*?)"\n', dump):
        # tdbdump prints bytes it cannot show as \XX (hex); pppd's records end with a NUL.
        text = re.sub(r"\\([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), record).replace("\0", "")
        values = dict(part.partition("=")[::2] for part in text.split(";") if "=" in part)
        if values.get("PEERNAME") in wanted and values.get("PPPD_PID", "").isdigit():
            pids.append(int(values["PPPD_PID"]))
    return sorted(set(pids))


def candidate_text(content: str, candidates: dict[Path, Path], own: Path) -> str:
    """`content` with every other changed file's live path (a whole word) replaced by its candidate's."""
    for live, candidate in candidates.items():
        if live != own and str(live) in content:
            content = re.sub(rf"(?<![^\s=\"']){re.escape(str(live))}(?![^\s\"';,])", str(candidate), content)
    return content
