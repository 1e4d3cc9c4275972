"""What each step does to the router: check its candidate, commit it, roll it back. The
steps themselves are data (vragent.steps: what they change, their summary and diff); this is
their OS half, dispatched on the step's type."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from vragent.paths import proc_path
from vragent.shell import files, netlink, owed, passwordfile, runner
from vragent.steps import (AddressStep, ConntrackDeleteStep, DaemonStep, DhcpReleaseStep, FileStep,
                           GratuitousArpStep, IptablesStep, LinkStateStep, MtuStep, PasswordHandoverStep,
                           PolicyRuleStep, RouteStep, Step, SysctlStep, TableRouteStep, VpnSessionStep,
                           candidate_text, numbered_context, sessions_of)


def check(step: Step) -> None:
    """Validate the candidate without changing anything."""
    action = _dispatch(_CHECKS, step)
    if action is not None:
        action(step)


def has_check(step: Step) -> bool:
    """Whether the step has a candidate to check (a checker process to run) at all."""
    return _dispatch(_CHECKS, step) is not None


def commit(step: Step) -> None:
    action = _dispatch(_COMMITS, step)
    if action is None:
        raise NotImplementedError(f"no commit for {type(step).__name__}")
    action(step)


def rollback(step: Step) -> None:
    """Undo commit(); only called after commit() returned."""
    action = _dispatch(_ROLLBACKS, step)
    if action is not None:
        action(step)


def _dispatch(table: dict, step: Step):
    for cls in type(step).__mro__:
        if cls in table:
            return table[cls]
    return None


def _commit_SysctlStep(self) -> None:
    _write_sysctl(self.key, self.new)


def _rollback_SysctlStep(self) -> None:
    if self.old is not None:
        _write_sysctl(self.key, self.old)


def _write_sysctl(key: str, value: str) -> None:
    with open(proc_path(key), "w") as handle:
        handle.write(value)
    with open(proc_path(key)) as handle:
        actual = " ".join(handle.read().split())
    if actual != " ".join(value.split()):
        raise OSError(errno.EINVAL, f"{key} reads back {actual!r} after writing {value!r}")


def _commit_MtuStep(self) -> None:
    netlink.set_mtu(self.device, self.new)


def _rollback_MtuStep(self) -> None:
    netlink.set_mtu(self.device, self.old)


def _commit_AddressStep(self) -> None:
    (netlink.add_address if self.add else netlink.delete_address)(self.device, self.interface)


def _rollback_AddressStep(self) -> None:
    (netlink.delete_address if self.add else netlink.add_address)(self.device, self.interface)


def _commit_LinkStateStep(self) -> None:
    netlink.set_link_state(self.device, self.up)


def _rollback_LinkStateStep(self) -> None:
    netlink.set_link_state(self.device, not self.up)


def _commit_RouteStep(self) -> None:
    netlink.set_default_route(self.new, self.family)


def _rollback_RouteStep(self) -> None:
    netlink.set_default_route(self.old, self.family)


def _commit_PolicyRuleStep(self) -> None:
    netlink.change_rule(self.rule, self.add)


def _rollback_PolicyRuleStep(self) -> None:
    netlink.change_rule(self.rule, not self.add)


def _commit_TableRouteStep(self) -> None:
    netlink.change_route(self.route, self.add)


def _rollback_TableRouteStep(self) -> None:
    netlink.change_route(self.route, not self.add)


def _check_IptablesStep(self) -> None:
    _restore([self._restore_tool, "--test", "-w", "--noflush"], self.script, self.table)


def _commit_IptablesStep(self) -> None:
    _restore([self._restore_tool, "-w", "--noflush"], self.script, self.table)


def _rollback_IptablesStep(self) -> None:
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


def _commit_FileStep(self) -> None:
    if self.new is None:
        files.remove(self.path)
    else:
        files.atomic_write(self.path, self.new, self.mode)


def _rollback_FileStep(self) -> None:
    if self.old is None:
        files.remove(self.path)
    else:
        files.atomic_write(self.path, self.old, self.mode)


def _commit_ConntrackDeleteStep(self) -> None:
    for args in self.filters:
        # conntrack exits 1 when nothing matched; that is success here.
        runner.run(["conntrack", "-D", *args], ok_codes=(0, 1))


def _commit_GratuitousArpStep(self) -> None:
    # -U: unsolicited ARP so neighbours replace a stale MAC for this IP at once.
    runner.spawn(["arping", "-q", "-U", "-c", "2", "-I", self.device, str(self.ip)])


def _candidate_DaemonStep(self, path: Path) -> Path:
    return path.with_name(path.name + ".new")


def _check_DaemonStep(self) -> None:
    if self.checker is None:
        return
    candidates = {path: _candidate_DaemonStep(self, path) for path, _, new, _ in self.changes if new is not None}
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


def _owe(self, action: str) -> None:
    if self.owed_record is not None and action != "none":
        owed.record(self.owed_record, action)


def _settle(self) -> None:
    if self.owed_record is not None:
        owed.clear(self.owed_record)


def _commit_DaemonStep(self) -> None:
    # Owed before anything is replaced, settled once the daemon took the files: a crash in
    # between leaves the record, and the next apply performs the action (shell/owed.py).
    _owe(self, self.action)
    for path, _, new, mode in self.changes:
        if new is None:
            files.remove(path)
        else:
            files.atomic_write(path, new, mode)
        files.remove(path.with_name(path.name + ".failed"))
    try:
        _act_DaemonStep(self, self.action)
    except Exception:
        # The daemon would not take the new files (a reload HAProxy could not complete):
        # keep them as *.failed, put this step's own files back and make the daemon use
        # them again; the transaction then undoes the steps before this one.
        for path, _, new, mode in self.changes:
            if new is not None:
                files.atomic_write(path.with_name(path.name + ".failed"), new, mode)
        try:
            rollback(self)
        except Exception:  # noqa: BLE001 - report the original failure
            pass
        raise
    _settle(self)


def _act_DaemonStep(self, action: str) -> None:
    if action == "none":
        return
    if self.hooks is not None:
        self.hooks.before(action)
    self.backend.perform(self.service, action)
    if self.hooks is not None:
        self.hooks.after(action)


def _rollback_DaemonStep(self) -> None:
    undo = ("start" if self.action == "stop" and self.was_running else
            "stop" if self.action == "start" and not self.was_running else self.action)
    _owe(self, undo)
    for path, old, _, mode in self.changes:
        if old is None:
            files.remove(path)
        else:
            files.atomic_write(path, old, mode)
    _act_DaemonStep(self, undo)
    _settle(self)


def _commit_DhcpReleaseStep(self) -> None:
    runner.run(["dhcp_release", self.device, str(self.ip), self.mac])


def _commit_PasswordHandoverStep(self) -> None:
    if self.views:
        import json

        files.atomic_write(passwordfile.views_path(self.path), json.dumps(self.views, sort_keys=True) + "\n", 0o600)
    self.previous = passwordfile.update(self.path, dict(self.passwords))


def _rollback_PasswordHandoverStep(self) -> None:
    if self.previous:
        passwordfile.update(self.path, self.previous)


def _commit_VpnSessionStep(self) -> None:
    import signal

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


_CHECKS = {IptablesStep: _check_IptablesStep, DaemonStep: _check_DaemonStep}
_COMMITS = {SysctlStep: _commit_SysctlStep, MtuStep: _commit_MtuStep, AddressStep: _commit_AddressStep, LinkStateStep: _commit_LinkStateStep, RouteStep: _commit_RouteStep, PolicyRuleStep: _commit_PolicyRuleStep, TableRouteStep: _commit_TableRouteStep, IptablesStep: _commit_IptablesStep, FileStep: _commit_FileStep, ConntrackDeleteStep: _commit_ConntrackDeleteStep, GratuitousArpStep: _commit_GratuitousArpStep, DaemonStep: _commit_DaemonStep, DhcpReleaseStep: _commit_DhcpReleaseStep, PasswordHandoverStep: _commit_PasswordHandoverStep, VpnSessionStep: _commit_VpnSessionStep}
_ROLLBACKS = {SysctlStep: _rollback_SysctlStep, MtuStep: _rollback_MtuStep, AddressStep: _rollback_AddressStep, LinkStateStep: _rollback_LinkStateStep, RouteStep: _rollback_RouteStep, PolicyRuleStep: _rollback_PolicyRuleStep, TableRouteStep: _rollback_TableRouteStep, IptablesStep: _rollback_IptablesStep, FileStep: _rollback_FileStep, DaemonStep: _rollback_DaemonStep, PasswordHandoverStep: _rollback_PasswordHandoverStep}
