"""The pipeline: parse -> validate -> merge -> render -> observe -> plan -> check ->
commit -> verify -> record. Only this module strings the phases together."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from vragent import guard
from vragent.shell import files, hotplug, leftovers, lock, log, memo, netlink, observe, owed, runner, services
from vragent.pipeline import document as state_doc
from vragent.pipeline import explain
from vragent.shell.transaction import Transaction
from vragent.errors import ApplyFailed, InvalidInput
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.desired import Desired
from vragent.pipeline.plan import Plan, build
from vragent.subsystems.network import nics, render as addresses, routing, sysctl
from vragent.subsystems.dhcp import render as dnsmasq
from vragent.subsystems.lb import render as haproxy
from vragent.subsystems.guestdata import render as metadata
from vragent.subsystems.monitoring import render as monitoring
from vragent.pipeline import netfilter
from vragent.subsystems.ipv6 import rules as netfilter6, render as radvd
from vragent.subsystems.vpn import render as vpn
from vragent.subsystems.vrrp import model as redundancy
from vragent.shell import roles
from vragent.subsystems.vrrp import render as vrrp_render
from vragent.subsystems.vrrp import conntrackd, keepalived
from vragent.pipeline.intake import Document, merge_documents
from vragent.pipeline.intake import fingerprint
from vragent.context import Context
from vragent.desired import Observed
from vragent.subsystems.dhcp import service as dhcp_service
from vragent.subsystems.guestdata import service as guestdata_service
from vragent.subsystems.ipv6 import service as ipv6_service
from vragent.subsystems.lb import service as lb_service
from vragent.subsystems.vpn import service as vpn_service
from vragent.subsystems.vrrp import service as vrrp_service
from vragent.subsystems.bgp import render as bgp_render, service as bgp_service
from vragent import templating
from vragent.shell import passwordfile
from vragent.subsystems.dhcp import incumbent_files

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
    phases: dict[str, float] = field(default_factory=dict)  # phase -> ms, in the order run
    lock_wait_ms: float = 0.0  # waiting for a concurrent apply (not a phase of this one)
    _phase_started: float = field(default_factory=time.monotonic, repr=False)

    def phase_done(self, name: str) -> None:
        """Close the phase that ran since the previous one (timings for operators and benches)."""
        now = time.monotonic()
        self.phases[name] = round((now - self._phase_started) * 1000, 1)
        self._phase_started = now

    @property
    def exit_code(self) -> int:
        return {"invalid": EXIT_INVALID, "failed": EXIT_FAILED}.get(self.status, EXIT_OK)

    def as_json(self) -> dict:
        return {"status": self.status, "exit_code": self.exit_code, "changed": self.changed,
                "push": self.push, "steps": self.steps, "errors": self.errors, "notes": self.notes,
                "duration_ms": round(self.duration_ms, 1), "forks": self.forks,
                "lock_wait_ms": round(self.lock_wait_ms, 1), "phases_ms": self.phases}


def load_state(paths: Paths) -> RouterState:
    return state_from_text(files.read_text(paths.state), paths)


def state_from_text(text: str | None, paths: Paths, rules: bool = True) -> RouterState:
    if text is None:
        return RouterState()
    try:
        return state_doc.load_trusted(text, rules)
    except Exception as exc:  # noqa: BLE001 - any defect in the file means the same thing
        raise ApplyFailed(f"the persisted state {paths.state} is unreadable ({exc!r}); "
                          "apply a full native document to replace it") from None


# Each daemon the router may run: factory(state, paths) -> desired.DaemonDesired.
DAEMONS = [dnsmasq.daemon, haproxy.daemon, metadata.daemon, radvd.daemon]
# Remote-access VPN: IPsec first, so L2TP is protected from the moment it listens.
DAEMONS += [vpn.strongswan_daemon, vpn.xl2tpd_daemon]
# Redundant pairs: conntrackd before keepalived, so a new primary finds its cache to commit.
DAEMONS += [conntrackd.daemon, keepalived.daemon]
# Dynamic routing (routed networks): zebra first, bgpd hands it the routes it learns.
DAEMONS += [bgp_render.zebra_daemon, bgp_render.bgpd_daemon]


# Every daemon's service, by name: renderers name them (DaemonDesired.service), the engine
# binds them to how they run.
SERVICES = {spec.name: spec for spec in (dhcp_service.SERVICE, lb_service.SERVICE, guestdata_service.SERVICE,
                                         ipv6_service.SERVICE, vpn_service.SERVICE, vpn_service.XL2TPD,
                                         vrrp_service.CONNTRACKD, vrrp_service.KEEPALIVED,
                                         bgp_service.ZEBRA_SERVICE, bgp_service.BGPD_SERVICE)}


def runtime(paths: Paths) -> services.Runtime:
    return services.Runtime(services.backend(paths), SERVICES, paths)


def daemons(state: RouterState, paths: Paths) -> list:
    return [factory(state, paths) for factory in DAEMONS]


def render(state: RouterState, paths: Paths, role: redundancy.Role | None = None,
           release_vips: bool = False, tables: bool = True) -> Desired:
    """The whole router the state asks for; without `tables` when they are known to be
    what the state renders to already (memo.TablesMemo)."""
    templating.use_store(memo.RenderMemo(paths))
    sysctls = sysctl.render(state)
    links = addresses.render(state)
    desired = Desired(
        tables={**netfilter.render(state), **netfilter6.render(state)} if tables else {},
        sysctls=sysctls,
        links=links,
        files={paths.under(sysctl.SYSCTL_FILE): (sysctl.file_content(sysctls), 0o644),
               paths.under(routing.RT_TABLES_FILE): (routing.rt_tables(links.policy), 0o644),
               **monitoring.files(state, paths),
               **incumbent_files.files(state, paths)},  # /etc/dhcphosts.txt etc. (issue 14)
        daemons=daemons(state, paths),
        runtime=runtime(paths),
    )
    # A redundant router converges to its VRRP role (the persisted one unless told).
    if redundancy.enabled(state):
        desired = vrrp_render.shape(desired, state, roles.current_role(paths) if role is None else role,
                                    release_vips, held_vips=vrrp_service.configured_vips(paths))
    guard.check_files([*desired.files.items(), *((p, c) for d in desired.daemons for p, (c, _) in d.files.items())])
    return desired


def pending_passwords(state: RouterState, paths: Paths) -> dict[str, str]:
    """What the password server still holds for VMs (its file), when this push offers any."""
    if not state.password_offers:
        return {}
    return passwordfile.read(metadata.MetadataPaths.of(paths).passwords)


def claim_owned_files(desired: Desired) -> None:
    """Files in a daemon's own directories that it no longer wants are to be removed."""
    for daemon in desired.daemons:
        for directory in daemon.owned_dirs:
            for path in observe.files_in(directory):
                daemon.files.setdefault(path, (None, 0o600))


def observe_for(desired: Desired, links=None, tables_only=None, known_tables=None) -> Observed:
    """What the plan for `desired` compares with; tables only when it has them."""
    daemon_files = [path for d in desired.daemons for path in (*d.files, *d.seed_files)]
    observed = observe.observe(desired.sysctls.keys(), [*desired.files, *daemon_files],
                           [desired.runtime.spec(d.service) for d in desired.daemons], desired.runtime.backend, links,
                           tables_only, known_tables, tables=bool(desired.tables),
                           ipv6_tables=any(spec.family == 6 for spec in desired.tables.values()),
                           ipv6_route=desired.links.default_route6 is not None or desired.links.withdraw_route6)
    if desired.runtime is not None:
        observed.owed = owed.read(desired.runtime.paths.run_dir)
    return observed


def apply(paths: Paths, documents: list[Document], *, dry_run: bool = False,
          lock_wait: float = lock.DEFAULT_WAIT, names: list[str] | None = None, full: bool = False) -> Result:
    """Apply a push as one transaction. `full`: trust no memo (merge and read everything)."""
    started = time.monotonic()
    forks_before = runner.forks
    logger = log.get()
    result = Result(status="failed", push=names or sorted({d.name.split(":")[0] for d in documents}))
    try:
        if dry_run:
            _run(paths, documents, result, dry_run=True, full=full)
        else:
            with lock.apply_lock(paths.lock, lock_wait, what=f"push {','.join(result.push)}") as held:
                result.lock_wait_ms = held.waited * 1000
                result._phase_started = time.monotonic()  # the wait is not the "load" phase
                _run(paths, documents, result, dry_run=False, full=full)
    except InvalidInput as exc:
        result.status = "invalid"
        result.errors = [{"path": e.path, "message": e.message} for e in exc.errors]
    except ApplyFailed as exc:
        result.status = "failed"
        result.errors.append({"path": "", "message": str(exc)})
    result.duration_ms = (time.monotonic() - started) * 1000
    result.forks = runner.forks - forks_before
    if result.status in ("applied", "failed"):
        from vragent.shell import history

        try:
            history.record_apply(paths, result)
        except OSError as exc:
            logger.warning("could not record the apply for status: %s", exc)
    for error in result.errors:
        logger.error("%s: %s", error["path"] or "apply", error["message"])
    phases = ", ".join(f"{name} {ms:.0f}" for name, ms in result.phases.items() if ms >= 1)
    logger.info("push %s: %s, %d step(s), %.0f ms%s", ",".join(result.push), result.status,
                len(result.steps), result.duration_ms, f" ({phases})" if phases else "")
    return result


def _run(paths: Paths, documents: list[Document], result: Result, *, dry_run: bool,
         role: redundancy.Role | None = None, release_vips: bool = False, full: bool = False) -> None:
    logger = log.get()
    generation = netlink.ruleset_generation()  # before anything reads the tables
    saved_text = files.read_text(paths.state)
    saved_digest = memo.digest(saved_text)
    merge_memo, push = memo.MergeMemo(paths), fingerprint(documents)
    # Converging to the persisted state (validated when saved), or a push already merged.
    state_as_saved = not documents or (not full and merge_memo.fits(push, saved_digest))
    tables_memo = memo.TablesMemo(paths)
    tables_as_verified = not full and state_as_saved and tables_memo.fits(generation, saved_digest)
    # Unless nothing at all is to be done with them, plan against the tables as remembered
    # verified, if the generation says they still run unchanged; else read them.
    remembered = None if full or tables_as_verified else tables_memo.running(generation)
    old_state = state_from_text(saved_text, paths, rules=not tables_as_verified)
    result.phase_done("load")
    links = observe.netlink.links_and_addresses()  # read once: for validation and for the plan
    state_text: str | None
    if state_as_saved:
        new_state, state_text = old_state, saved_text
    else:
        links, waited = hotplug.await_nics(nics.wanted(documents), links, observe.netlink.links_and_addresses, logger)
        context = Context(links={name: link.mac for name, link in links[0].items() if name.startswith("eth")},
                          waited=waited)
        new_state = merge_documents(old_state, documents, context)
        state_text = None  # serialised while the transaction waits for its processes (below)
    result.phase_done("merge")

    # A push that changed only what no table depends on (a VM's DHCP entry, data or password:
    # the push of every VM deploy) leaves the tables as verified for the state before it:
    # they are neither rendered nor read, however many rules the router holds.
    tables_carried = (not full and not tables_as_verified and not state_as_saved
                      and tables_memo.fits(generation, saved_digest) and tables_unaffected(old_state, new_state))
    desired = render(new_state, paths, role, release_vips, tables=not (tables_as_verified or tables_carried))
    if netfilter6.withdrawn(old_state, new_state):  # IPv6 gone: its chains and route go too
        desired = netfilter6.withdraw(desired)
    claim_owned_files(desired)
    if not dry_run:
        _sweep_leftovers(desired, paths, logger)
    result.phase_done("render")
    observed = observe_for(desired, links,
                           known_tables=observe.remembered_tables(remembered) if remembered else None)
    result.phase_done("observe")
    plan = build(desired, observed, old_state, new_state)
    if observed.running.get(dnsmasq.SERVICE_NAME):
        plan.steps += dnsmasq.release_steps(old_state, new_state)
    plan.steps += metadata.password_steps(new_state, paths, pending_passwords(new_state, paths))
    plan.steps += vpn.session_steps(old_state, new_state, paths)
    result.notes = plan.notes
    result.phase_done("plan")

    if dry_run:
        state_text = state_doc.dumps(new_state) if state_text is None else state_text
        state_changed = saved_text != state_text
        result.status = "dry-run"
        result.changed = not plan.empty or state_changed
        result.steps = [{"kind": s.kind, "summary": s.summary(), "status": "planned"} for s in plan.steps]
        result.diff = explain.dry_run_text(plan.steps)
        if state_changed:
            result.diff += "".join(_state_diff(paths, state_text))
        return

    # The new state's text is needed only once the commit is verified: make it while the
    # checks and commits keep the agent waiting for iptables-restore and the daemons' checkers.
    serialized = Background(state_doc.dumps, new_state) if state_text is None else None
    transaction = Transaction(plan.steps, logger)
    try:
        transaction.check()
        transaction.commit()
    finally:
        result.steps = transaction.report()
    if serialized is not None:
        try:
            state_text = serialized.result()
        except Exception as exc:  # noqa: BLE001 - a state that cannot be saved must not stay applied
            transaction.rollback(reason="the new state could not be serialised")
            result.steps = transaction.report()
            raise ApplyFailed(f"the new state could not be serialised ({exc!r}); rolled back") from None
    result.phase_done("commit")
    touched = {step.table for step in plan.steps if step.kind == "iptables"}
    if touched:
        # Our commits moved the generation by one each; any other move means someone else
        # changed a table meanwhile, and the tables will be read in full next time.
        expected = generation.advanced_by(len(touched)) if generation is not None else None
        generation = netlink.ruleset_generation()
        if generation != expected:
            generation = None
    verification = build(desired, observe_for(desired, **_tables_to_verify(plan, observed))) if plan.steps else Plan()
    if not verification.empty:
        transaction.rollback(reason="verification found the router still differs")
        result.steps = transaction.report()
        raise ApplyFailed("after commit the router still differs from the desired state "
                          f"({'; '.join(s.summary() for s in verification.steps)}); rolled back")
    result.phase_done("verify")
    # Name what changed; for `restore` (the committed state again) all of it was repair.
    verb = "repaired" if result.push == ["restore"] else "changed"
    for line in explain.log_lines(plan.steps):
        logger.info("%s %s: %s", ",".join(result.push), verb, line)
    state_changed = saved_text != state_text
    state_digest = memo.digest(state_text) if state_changed else saved_digest
    if state_changed:
        try:
            files.atomic_write(paths.state, state_text, 0o600)
        except OSError as exc:
            # A router the saved state does not describe would be undone by the next boot and
            # mis-planned by the next push: put back what was committed (disk full, say).
            transaction.rollback(reason="the new state could not be saved")
            result.steps = transaction.report()
            raise ApplyFailed(f"the new state could not be saved to {paths.state} "
                              f"({exc.strerror or exc}); every change was rolled back") from None
        logger.info("state saved to %s", paths.state)
    try:  # caches: one that cannot be written only costs the next apply time
        if documents:
            merge_memo.remember(push, state_digest)
        if tables_carried:
            tables_memo.carry(generation, saved_digest, state_digest)
        elif not tables_as_verified:
            tables_memo.remember(generation, state_digest, desired.tables)
    except OSError as exc:
        logger.warning("could not remember the apply (%s); the next one reads everything", exc)
    result.changed = bool(plan.steps) or state_changed
    result.status = "applied" if result.changed else "unchanged"
    result.phase_done("record")


# RouterState fields no netfilter table is rendered from (tests/unit/test_scale.py proves it
# on every golden router).
TABLE_FREE_FIELDS = ("dhcp_hosts", "vm_data", "password_offers")


def tables_unaffected(old: RouterState, new: RouterState) -> bool:
    """Whether `new` differs from `old` only in TABLE_FREE_FIELDS (merges keep the very
    objects of the sections they leave alone, so this is mostly identity checks)."""
    import dataclasses

    for item in dataclasses.fields(RouterState):
        if item.name not in TABLE_FREE_FIELDS:
            before, after = getattr(old, item.name), getattr(new, item.name)
            if before is not after and before != after:
                return False
    return True


def _sweep_leftovers(desired: Desired, paths: Paths, logger) -> None:
    """Temporary and candidate files a killed apply left (shell/leftovers.py)."""
    daemon_files = [path for d in desired.daemons for path in (*d.files, *d.seed_files)]
    removed = leftovers.sweep([*desired.files, *daemon_files, paths.state, owed.record_path(paths.run_dir, "x"),
                               paths.run_dir / "x"],
                              [path.with_name(path.name + ".new") for d in desired.daemons for path in d.files])
    if removed:
        logger.info("removed %d file(s) an interrupted apply left: %s", len(removed),
                    ", ".join(str(p) for p in removed[:10]))


class Background:
    """`function(*args)` computed in a thread meanwhile; `result()` waits for it (and raises
    what it raised). For pure work that can fill the time the agent waits on a process."""

    # While it runs, the waiting thread gets the interpreter back this soon (seconds) when
    # its process has answered, instead of after the default 5 ms.
    SWITCH_INTERVAL = 0.0005

    def __init__(self, function, *args):
        import sys
        import threading

        self._value, self._error = None, None
        default_interval = sys.getswitchinterval()

        def work() -> None:
            try:
                self._value = function(*args)
            except BaseException as exc:  # noqa: BLE001 - handed to result()
                self._error = exc
            finally:
                sys.setswitchinterval(default_interval)

        sys.setswitchinterval(self.SWITCH_INTERVAL)
        self._thread = threading.Thread(target=work, daemon=True)
        self._thread.start()

    def result(self):
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


# Reading a chain back costs a fork and time in proportion to its rules; past this many
# changed chains one iptables-save of everything is cheaper.
CHAINS_READ_ONE_BY_ONE = 6


def _tables_to_verify(plan: Plan, observed: Observed) -> dict:
    """How the verification sees the tables: when the plan was made against remembered
    tables and changed only a few chains, just those chains read again; otherwise every
    changed table read again (one iptables-save)."""
    steps = [step for step in plan.steps if step.kind == "iptables"]
    if (any(step.rollback_text is not None for step in steps)
            or sum(len(step.touched_chains) for step in steps) > CHAINS_READ_ONE_BY_ONE):
        return {"tables_only": {step.table for step in steps}, "known_tables": observed.tables}
    tables = dict(observed.tables)
    for step in steps:
        tables[step.table] = observe.reread_chains(observed.tables[step.table], step.touched_chains)
    return {"known_tables": tables}


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
        with lock.apply_lock(paths.lock, lock_wait, what=name):
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


def _state_diff(paths: Paths, new_text: str) -> str:
    from vragent.redact import secrets_hidden

    # The state holds load balancers' TLS keys; a printed diff must not.
    old = secrets_hidden(files.read_text(paths.state) or "")
    return explain.state_diff(old, secrets_hidden(new_text), f"{paths.state} (saved)", f"{paths.state} (after apply)")
