"""The steps a plan is made of. Each can describe itself (for --dry-run), check its
candidate, commit, and roll back what it committed."""

from __future__ import annotations

import errno
import os
import re
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path

from vragent import files, netlink, runner
from vragent.render.sysctl import proc_path


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

    def check(self) -> None:
        """Validate the candidate without changing anything."""

    def commit(self) -> None:
        raise NotImplementedError

    def rollback(self) -> None:
        """Undo commit(); only called after commit() returned."""


@dataclass
class SysctlStep(Step):
    key: str
    old: str | None
    new: str
    kind = "sysctl"

    def summary(self) -> str:
        return f"sysctl {self.key}: {self.old} -> {self.new}"

    def commit(self) -> None:
        _write_sysctl(self.key, self.new)

    def rollback(self) -> None:
        if self.old is not None:
            _write_sysctl(self.key, self.old)


def _write_sysctl(key: str, value: str) -> None:
    with open(proc_path(key), "w") as handle:
        handle.write(value)
    with open(proc_path(key)) as handle:
        actual = " ".join(handle.read().split())
    if actual != " ".join(value.split()):
        raise OSError(errno.EINVAL, f"{key} reads back {actual!r} after writing {value!r}")


@dataclass
class MtuStep(Step):
    device: str
    old: int
    new: int
    kind = "link"

    def summary(self) -> str:
        return f"link {self.device} mtu {self.old} -> {self.new}"

    def commit(self) -> None:
        netlink.set_mtu(self.device, self.new)

    def rollback(self) -> None:
        netlink.set_mtu(self.device, self.old)


@dataclass
class AddressStep(Step):
    device: str
    interface: IPv4Interface
    add: bool
    kind = "address"

    def summary(self) -> str:
        return f"address {'+' if self.add else '-'} {self.interface} dev {self.device}"

    def commit(self) -> None:
        (netlink.add_address if self.add else netlink.delete_address)(self.device, self.interface)

    def rollback(self) -> None:
        (netlink.delete_address if self.add else netlink.add_address)(self.device, self.interface)


@dataclass
class LinkStateStep(Step):
    """A NIC administratively up or down (a redundant pair's public NIC follows the VRRP role)."""

    device: str
    up: bool
    kind = "link"

    def summary(self) -> str:
        return f"link {self.device} {'up' if self.up else 'down'}"

    def commit(self) -> None:
        netlink.set_link_state(self.device, self.up)

    def rollback(self) -> None:
        netlink.set_link_state(self.device, not self.up)


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

    def commit(self) -> None:
        netlink.set_default_route(self.new, self.family)

    def rollback(self) -> None:
        netlink.set_default_route(self.old, self.family)


@dataclass
class PolicyRuleStep(Step):
    """One policy rule added or deleted (render/routing.py)."""

    rule: netlink.Rule
    add: bool
    kind = "rule"

    def summary(self) -> str:
        return f"ip rule {'+' if self.add else '-'} {self.rule}"

    def commit(self) -> None:
        netlink.change_rule(self.rule, self.add)

    def rollback(self) -> None:
        netlink.change_rule(self.rule, not self.add)


@dataclass
class TableRouteStep(Step):
    """One route of a policy routing table added or deleted (render/routing.py)."""

    route: netlink.Route
    add: bool
    kind = "route"

    def summary(self) -> str:
        return f"route {'+' if self.add else '-'} {self.route}"

    def commit(self) -> None:
        netlink.change_route(self.route, self.add)

    def rollback(self) -> None:
        netlink.change_route(self.route, not self.add)


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
        from vragent.render.netfilter import kernel_table

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

    def check(self) -> None:
        _restore([self._restore_tool, "--test", "-w", "--noflush"], self.script, self.table)

    def commit(self) -> None:
        _restore([self._restore_tool, "-w", "--noflush"], self.script, self.table)

    def rollback(self) -> None:
        if self.rollback_text is None:
            _restore([self._restore_tool, "-w", "--noflush"], self.undo_script, self.table)
        else:
            _restore([self._restore_tool, "-w", "-T", self._kernel_table], self.rollback_text, self.table)


def _restore(argv: list[str], script: str, table: str) -> None:
    # iptables-restore reads a complete file on stdin (not a pipe we are still writing), so a
    # killed agent can never feed it half a transaction: an anonymous in-memory file, written
    # whole before the process starts (nothing left behind in /tmp either). Not a file
    # argument: `-w FILE` would take FILE as the wait time and restore nothing.
    fd = os.memfd_create(f"vragent-{table}-rules", os.MFD_CLOEXEC)
    try:
        with os.fdopen(fd, "w", closefd=False) as handle:
            handle.write(script)
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            runner.run(argv, stdin_fd=fd)
        except runner.CommandFailed as exc:
            raise runner.CommandFailed(exc.argv, exc.returncode,
                                       exc.output + "\n" + numbered_context(script, exc.output)) from None
    finally:
        os.close(fd)


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

    def commit(self) -> None:
        if self.new is None:
            files.remove(self.path)
        else:
            files.atomic_write(self.path, self.new, self.mode)

    def rollback(self) -> None:
        if self.old is None:
            files.remove(self.path)
        else:
            files.atomic_write(self.path, self.old, self.mode)


@dataclass
class ConntrackDeleteStep(Step):
    """Forget the flows of a revoked NAT rule, and only those (never a full flush)."""

    filters: list[list[str]]
    reason: str
    kind = "conntrack"
    reversible = False

    def summary(self) -> str:
        return f"conntrack delete flows of {self.reason}"

    def commit(self) -> None:
        for args in self.filters:
            # conntrack exits 1 when nothing matched; that is success here.
            runner.run(["conntrack", "-D", *args], ok_codes=(0, 1))


@dataclass
class GratuitousArpStep(Step):
    device: str
    ip: IPv4Address
    kind = "arp"
    reversible = False

    def summary(self) -> str:
        return f"gratuitous ARP for {self.ip} on {self.device}"

    def commit(self) -> None:
        # -U: unsolicited ARP so neighbours replace a stale MAC for this IP at once.
        runner.spawn(["arping", "-q", "-U", "-c", "2", "-I", self.device, str(self.ip)])


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
    kind = "service"

    def summary(self) -> str:
        return f"{self.service.name}: {self.action} ({self.reason})"

    def diff(self) -> str:
        text = "".join(FileStep(path, old, new, mode).diff() for path, old, new, mode in self.changes)
        return text + f"service {self.service.name}: {self.action} ({self.reason})\n"

    def _candidate(self, path: Path) -> Path:
        return path.with_name(path.name + ".new")

    def check(self) -> None:
        if self.checker is None:
            return
        candidates = {path: self._candidate(path) for path, _, new, _ in self.changes if new is not None}
        for path, _, new, mode in self.changes:
            if new is not None:
                # A candidate naming another changed file (haproxy.cfg -> a new certificate) is
                # checked against that file's candidate, which is all that exists yet.
                files.atomic_write(candidates[path], candidate_text(new, candidates, path), mode)
        argv, ok_codes = self.checker(candidates), (0,)
        if isinstance(argv, tuple):  # (argv, exit codes that mean "valid")
            argv, ok_codes = argv
        try:
            runner.run(argv, ok_codes=ok_codes)
        except runner.CommandFailed:
            for path, _, new, mode in self.changes:
                if new is not None:  # the rejected content itself, as it would have gone live
                    files.atomic_write(path.with_name(path.name + ".failed"), new, mode)
            raise
        finally:
            for candidate in candidates.values():
                files.remove(candidate)

    def commit(self) -> None:
        for path, _, new, mode in self.changes:
            if new is None:
                files.remove(path)
            else:
                files.atomic_write(path, new, mode)
            files.remove(path.with_name(path.name + ".failed"))
        try:
            self._act(self.action)
        except Exception:
            # The daemon would not take the new files (a reload HAProxy could not complete):
            # keep them as *.failed, put this step's own files back and make the daemon use
            # them again; the transaction then undoes the steps before this one.
            for path, _, new, mode in self.changes:
                if new is not None:
                    files.atomic_write(path.with_name(path.name + ".failed"), new, mode)
            try:
                self.rollback()
            except Exception:  # noqa: BLE001 - report the original failure
                pass
            raise

    def _act(self, action: str) -> None:
        if action == "none":
            return
        if self.hooks is not None:
            self.hooks.before(action)
        self.backend.perform(self.service, action)
        if self.hooks is not None:
            self.hooks.after(action)

    def rollback(self) -> None:
        for path, old, _, mode in self.changes:
            if old is None:
                files.remove(path)
            else:
                files.atomic_write(path, old, mode)
        if self.action == "stop" and self.was_running:
            self._act("start")
        elif self.action == "start" and not self.was_running:
            self._act("stop")
        else:
            self._act(self.action)


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

    def commit(self) -> None:
        runner.run(["dhcp_release", self.device, str(self.ip), self.mac])
@dataclass
class PasswordHandoverStep(Step):
    """Hand VMs' new passwords to the password server (its file; see passwordfile.py).

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

    def commit(self) -> None:
        from vragent import passwordfile

        if self.views:
            import json

            files.atomic_write(passwordfile.views_path(self.path), json.dumps(self.views, sort_keys=True) + "\n", 0o600)
        self.previous = passwordfile.update(self.path, dict(self.passwords))

    def rollback(self) -> None:
        from vragent import passwordfile

        if self.previous:
            passwordfile.update(self.path, self.previous)


@dataclass
class VpnSessionStep(Step):
    """End the remote-access VPN sessions of users that were removed (or whose password
    changed): their pppd is found in pppd's session database (render/vpn.py) and sent
    SIGTERM, which hangs the session up. Other users' sessions are not touched."""

    db: Path
    users: tuple[str, ...]
    kind = "vpn"
    reversible = False

    def summary(self) -> str:
        return f"vpn: end the sessions of {', '.join(self.users)}"

    def commit(self) -> None:
        import signal

        from vragent.render.vpn import sessions_of

        if not self.db.exists():
            return  # no pppd has run: no session to end
        dump = runner.run(["tdbdump", str(self.db)]).stdout
        for pid in sessions_of(dump, self.users):
            try:
                with open(f"/proc/{pid}/comm") as handle:
                    if handle.read().strip() != "pppd":
                        continue  # that session is over and its pid reused: not ours to kill
                os.kill(pid, signal.SIGTERM)
            except (FileNotFoundError, ProcessLookupError):
                continue


def candidate_text(content: str, candidates: dict[Path, Path], own: Path) -> str:
    """`content` with every other changed file's live path (a whole word) replaced by its candidate's."""
    for live, candidate in candidates.items():
        if live != own and str(live) in content:
            content = re.sub(rf"(?<![^\s=\"']){re.escape(str(live))}(?![^\s\"';,])", str(candidate), content)
    return content
