"""The pipeline: parse -> validate -> merge -> render -> observe -> plan -> check ->
commit -> verify -> record. Only this module strings the phases together."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from vragent import files, lock, log, observe, runner, services
from vragent import state as state_doc
from vragent.apply.transaction import Transaction
from vragent.errors import ApplyFailed, InvalidInput, ValidationError
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.plan import Desired, Plan, build
from vragent.render import addresses, dnsmasq, haproxy, metadata, monitoring, netfilter, sysctl
from vragent import redundancy
from vragent.render import conntrackd, keepalived
from vragent.wire import Document, merge_documents
from vragent.wire.intake import fingerprint
from vragent.wire.context import Context

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


@dataclass
class Result:
    status: str  # applied | unchanged | dry-run | invalid | failed
    push: list[str]
    changed: bool = False
    steps: list[dict] = field(default_factory=list)
    errors: list[dict] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    duration_ms: float = 0.0
    diff: str = ""
    forks: int = 0

    @property
    def exit_code(self) -> int:
        return {"invalid": EXIT_INVALID, "failed": EXIT_FAILED}.get(self.status, EXIT_OK)

    def as_json(self) -> dict:
        return {"status": self.status, "exit_code": self.exit_code, "changed": self.changed,
                "push": self.push, "steps": self.steps, "errors": self.errors, "notes": self.notes,
                "duration_ms": round(self.duration_ms, 1), "forks": self.forks}


def load_state(paths: Paths) -> RouterState:
    text = files.read_text(paths.state)
    if text is None:
        return RouterState()
    try:
        return state_doc.load_trusted(text)
    except Exception as exc:  # noqa: BLE001 - any defect in the file means the same thing
        raise ApplyFailed(f"the persisted state {paths.state} is unreadable ({exc!r}); "
                          "apply a full native document to replace it") from None


# Each daemon the router may run: factory(state, paths) -> plan.DaemonDesired.
DAEMONS = [dnsmasq.daemon, haproxy.daemon, metadata.daemon]
# Redundant pairs: conntrackd before keepalived, so a new primary finds its cache to commit.
DAEMONS += [conntrackd.daemon, keepalived.daemon]


def daemons(state: RouterState, paths: Paths) -> list:
    return [factory(state, paths) for factory in DAEMONS]


def render(state: RouterState, paths: Paths, role: redundancy.Role | None = None,
           release_vips: bool = False) -> Desired:
    sysctls = sysctl.render(state)
    desired = Desired(
        tables=netfilter.render(state),
        sysctls=sysctls,
        links=addresses.render(state),
        files={paths.under(sysctl.SYSCTL_FILE): (sysctl.file_content(sysctls), 0o644),
               **monitoring.files(state, paths)},
        daemons=daemons(state, paths),
        backend=services.backend(paths),
    )
    # A redundant router converges to its VRRP role (the persisted one unless told).
    if redundancy.enabled(state):
        desired = redundancy.shape(desired, state, redundancy.current_role(paths) if role is None else role,
                                   release_vips)
    return desired


def claim_owned_files(desired: Desired) -> None:
    """Files in a daemon's own directories that it no longer wants are to be removed."""
    for daemon in desired.daemons:
        for directory in daemon.owned_dirs:
            for path in observe.files_in(directory):
                daemon.files.setdefault(path, (None, 0o600))


def observe_for(desired: Desired, links=None, tables_only=None, known_tables=None) -> observe.Observed:
    daemon_files = [path for d in desired.daemons for path in (*d.files, *d.seed_files)]
    return observe.observe(desired.sysctls.keys(), [*desired.files, *daemon_files],
                           [d.service for d in desired.daemons], desired.backend, links,
                           tables_only, known_tables)


def apply(paths: Paths, documents: list[Document], *, dry_run: bool = False,
          lock_wait: float = lock.DEFAULT_WAIT, names: list[str] | None = None) -> Result:
    started = time.monotonic()
    forks_before = runner.forks
    logger = log.get()
    result = Result(status="failed", push=names or sorted({d.name.split(":")[0] for d in documents}))
    try:
        if dry_run:
            _run(paths, documents, result, dry_run=True)
        else:
            with lock.apply_lock(paths.lock, lock_wait):
                _run(paths, documents, result, dry_run=False)
    except InvalidInput as exc:
        result.status = "invalid"
        result.errors = [{"path": e.path, "message": e.message} for e in exc.errors]
    except ApplyFailed as exc:
        result.status = "failed"
        result.errors.append({"path": "", "message": str(exc)})
    result.duration_ms = (time.monotonic() - started) * 1000
    result.forks = runner.forks - forks_before
    if result.status in ("applied", "failed"):
        from vragent import status

        try:
            status.record_apply(paths, result)
        except OSError as exc:
            logger.warning("could not record the apply for status: %s", exc)
    for error in result.errors:
        logger.error("%s: %s", error["path"] or "apply", error["message"])
    logger.info("push %s: %s, %d step(s), %.0f ms", ",".join(result.push), result.status,
                len(result.steps), result.duration_ms)
    return result


def _digest(text: str | None) -> str:
    import hashlib

    return hashlib.sha256((text or "").encode()).hexdigest()


class MergeMemo:
    """Remembers that pushing P onto state S gave state S again.

    Merging is a pure, idempotent function (each CloudStack type sets or deletes keys), so
    when the state on disk is exactly what the last apply of the same push produced, a new
    merge would give it back unchanged: the agent skips parsing, merging and validating the
    push again (most of a no-op re-apply of a large push) and goes straight to drift checks.
    """

    def __init__(self, paths: Paths):
        self.path = paths.run_dir / "merge-memo"

    def fits(self, push: str | None, state_text: str | None) -> bool:
        if push is None or state_text is None:
            return False
        return files.read_text(self.path) == f"{push} {_digest(state_text)}\n"

    def remember(self, push: str | None, state_text: str) -> None:
        if push is not None:
            files.atomic_write(self.path, f"{push} {_digest(state_text)}\n", 0o600)


def _run(paths: Paths, documents: list[Document], result: Result, *, dry_run: bool,
         role: redundancy.Role | None = None, release_vips: bool = False) -> None:
    logger = log.get()
    saved_text = files.read_text(paths.state)
    old_state = load_state(paths)
    links = observe.netlink.links_and_addresses()  # read once: for validation and for the plan
    memo, push = MergeMemo(paths), fingerprint(documents)
    if not documents:  # converge: the persisted state as it is (it was validated when saved)
        new_state, state_text = old_state, saved_text
    elif memo.fits(push, saved_text):
        new_state, state_text = old_state, saved_text
    else:
        context = Context(links={name: link.mac for name, link in links[0].items() if name.startswith("eth")})
        new_state = merge_documents(old_state, documents, context)
        state_text = state_doc.dumps(new_state)
    desired = render(new_state, paths, role, release_vips)
    claim_owned_files(desired)
    observed = observe_for(desired, links)
    plan = build(desired, observed, old_state, new_state)
    if observed.running.get(dnsmasq.SERVICE.name):
        plan.steps += dnsmasq.release_steps(old_state, new_state)
    plan.steps += metadata.password_steps(new_state, paths)
    result.notes = plan.notes
    state_changed = saved_text != state_text

    if dry_run:
        result.status = "dry-run"
        result.changed = not plan.empty or state_changed
        result.steps = [{"kind": s.kind, "summary": s.summary(), "status": "planned"} for s in plan.steps]
        result.diff = plan.diff()
        if state_changed:
            result.diff += "".join(_state_diff(paths, state_text))
        return

    transaction = Transaction(plan.steps, logger)
    try:
        transaction.check()
        transaction.commit()
    finally:
        result.steps = transaction.report()
    touched = {step.table for step in plan.steps if step.kind == "iptables"}
    verification = (build(desired, observe_for(desired, tables_only=touched, known_tables=observed.tables))
                    if plan.steps else Plan())
    if not verification.empty:
        transaction.rollback(reason="verification found the router still differs")
        result.steps = transaction.report()
        raise ApplyFailed("after commit the router still differs from the desired state "
                          f"({'; '.join(s.summary() for s in verification.steps)}); rolled back")
    if state_changed:
        files.atomic_write(paths.state, state_text, 0o600)
        logger.info("state saved to %s", paths.state)
    if documents:
        memo.remember(push, state_text)
    result.changed = bool(plan.steps) or state_changed
    result.status = "applied" if result.changed else "unchanged"


SKIPPED = "skipped: the precondition no longer held once the lock was taken"


def converge(paths: Paths, *, role: redundancy.Role | None = None, release_vips: bool = False,
             lock_wait: float = lock.DEFAULT_WAIT, on_locked=None, name: str = "converge") -> Result:
    """Make the router what the persisted state says, for a VRRP role (redundancy transitions).

    `on_locked()` runs once the apply lock is held (it records the new role, so no push can
    render a stale one); when it returns False nothing is done.
    """
    started = time.monotonic()
    logger = log.get()
    result = Result(status="failed", push=[name])
    try:
        with lock.apply_lock(paths.lock, lock_wait):
            if on_locked is not None and not on_locked():
                result.status, result.notes = "unchanged", [SKIPPED]
            else:
                _run(paths, [], result, dry_run=False, role=role, release_vips=release_vips)
    except (InvalidInput, ApplyFailed) as exc:
        result.status = "failed"
        result.errors.append({"path": "", "message": str(exc)})
    result.duration_ms = (time.monotonic() - started) * 1000
    for error in result.errors:
        logger.error("%s: %s", name, error["message"])
    logger.info("%s: %s, %d step(s), %.0f ms", name, result.status, len(result.steps), result.duration_ms)
    return result


def _state_diff(paths: Paths, new_text: str):
    import difflib

    old = _without_private_keys(files.read_text(paths.state) or "")
    new_text = _without_private_keys(new_text)
    return difflib.unified_diff(old.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                fromfile=f"{paths.state} (saved)", tofile=f"{paths.state} (after apply)")


def _without_private_keys(text: str) -> str:
    """The state holds load balancers' TLS keys; a printed diff must not."""
    import re

    return re.sub(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----",
                  "(private key, not shown)", text, flags=re.S)
