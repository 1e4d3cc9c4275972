"""Compare desired with observed and produce ordered steps, each with a reason (pure).

An empty plan means the router already is what the state says.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from vragent.steps import (AddressStep, ConntrackDeleteStep, DaemonStep, FileStep, GratuitousArpStep,
                           IptablesStep, LinkStateStep, MtuStep, PolicyRuleStep, RouteStep, Step, SysctlStep,
                           TableRouteStep)
from vragent.model import PortForward, RouterState
from vragent.desired import Observed, ObservedTable
from vragent.desired import LinkPlan
from vragent.tables import IP6_TABLES, TableSpec, is_owned
from vragent.tables import owned_tables
from vragent.desired import DaemonDesired, Desired

# Above this share of changed rules a chain is refilled rather than edited in place.
REFILL_RATIO = 0.5


@dataclass
class Plan:
    steps: list[Step] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things deliberately not done, and why

    @property
    def empty(self) -> bool:
        return not self.steps

    def diff(self) -> str:
        return "".join(step.diff() for step in self.steps)


def build(desired: Desired, observed: Observed, old_state: RouterState | None = None,
          new_state: RouterState | None = None) -> Plan:
    plan = Plan()
    plan.steps += _sysctl_steps(desired.sysctls, observed, plan.notes)
    link_steps, deletions, arps = _link_steps(desired.links, observed)
    plan.steps += link_steps
    for name in ("raw", "mangle", "nat", "filter", *IP6_TABLES):
        if name not in desired.tables:
            continue  # known to be as wanted (memo.TablesMemo): not rendered, not read
        step = table_step(desired.tables[name], observed.tables[name])
        if step is not None:
            plan.steps.append(step)
    plan.steps += deletions
    plan.steps += _file_steps(desired.files, observed)
    plan.steps += [step for daemon in desired.daemons
                   if (step := daemon_step(daemon, observed, desired.runtime)) is not None]
    if old_state is not None and new_state is not None:
        plan.steps += conntrack_steps(old_state, new_state)
    plan.steps += arps
    return plan


# -- sysctls ---------------------------------------------------------------------------------

def _sysctl_steps(wanted: dict[str, str], observed: Observed, notes: list[str]) -> list[Step]:
    steps: list[Step] = []
    for key, value in wanted.items():
        current = observed.sysctls.get(key)
        if current == value:
            continue
        if current is None:
            notes.append(f"sysctl {key} skipped: not present in this kernel or for this NIC")
        elif key in observed.read_only_sysctls:
            notes.append(f"sysctl {key} skipped: read-only here (global-only inside a network namespace); "
                         f"stays {current}, wanted {value}")
        else:
            steps.append(SysctlStep(key, current, value))
    return steps


# -- links, addresses, default route -------------------------------------------------------

def _link_steps(wanted: LinkPlan, observed: Observed):
    before: list[Step] = []
    deletions: list[Step] = []
    arps: list[Step] = []
    for device, mtu in sorted(wanted.mtu.items()):
        link = observed.links.get(device)
        if link is not None and link.mtu != mtu:
            before.append(MtuStep(device, link.mtu, mtu))
    for device, up in sorted(wanted.admin_up.items()):
        link = observed.links.get(device)
        if link is not None and link.up != up:
            before.append(LinkStateStep(device, up))
    for device, interfaces in wanted.addresses.items():
        if device not in observed.links:
            continue  # validation reports unknown devices; never invent NICs
        current = observed.addresses.get(device, set())
        for interface in interfaces:
            if interface not in current:
                before.append(AddressStep(device, interface, add=True))
                if interface in wanted.public:
                    arps.append(GratuitousArpStep(device, interface.ip))
        # Addresses on a managed NIC that the state does not hold go, after the rules using them.
        # Primary addresses last, so the kernel does not drop secondaries with them.
        extra = sorted(current - set(interfaces) - wanted.foreign.get(device, frozenset()),
                       key=lambda i: (i.version, i.network, i.ip), reverse=True)
        for interface in extra:
            deletions.append(AddressStep(device, interface, add=False))
    if wanted.default_route is not None and observed.default_route != wanted.default_route:
        before.append(RouteStep(observed.default_route, wanted.default_route))
    if wanted.default_route6 is not None and observed.default_route6 != wanted.default_route6:
        before.append(RouteStep(observed.default_route6, wanted.default_route6, family=6))
    elif wanted.withdraw_route6 and observed.default_route6 is not None:
        before.append(RouteStep(observed.default_route6, None, family=6))
    before += _policy_steps(wanted, observed)
    before += _static_route_steps(wanted, observed)
    return before, deletions, arps


def _static_route_steps(wanted: LinkPlan, observed: Observed) -> list[Step]:
    """A VPC's static routes in the main table (subsystems/network/static_routes.py), after the addresses
    their next hops are reached by; a changed next hop is a delete, then an add."""
    routes = {route for route in wanted.static_routes if route.device in observed.links}
    steps: list[Step] = [TableRouteStep(route, add=False) for route in sorted(observed.static_routes - routes, key=str)]
    steps += [TableRouteStep(route, add=True) for route in sorted(routes - observed.static_routes, key=str)]
    return steps


def _policy_steps(wanted: LinkPlan, observed: Observed) -> list[Step]:
    """Rules and table routes, after the addresses their gateways need and before any
    address goes (the kernel drops a table's routes with its NIC's last address).
    Rules go before the routes they look up, and come after them."""
    present = owned_tables(observed.links)  # never invent NICs (validation reports unknown ones)
    rules = {rule for rule in wanted.policy.rules if rule.table in present}
    routes = {route for route in wanted.policy.routes if route.table in present}
    steps: list[Step] = [PolicyRuleStep(rule, add=False) for rule in sorted(observed.policy_rules - rules, key=str)]
    steps += [TableRouteStep(route, add=False) for route in sorted(observed.policy_routes - routes, key=str)]
    steps += [TableRouteStep(route, add=True) for route in sorted(routes - observed.policy_routes, key=str)]
    steps += [PolicyRuleStep(rule, add=True) for rule in sorted(rules - observed.policy_rules, key=str)]
    return steps


# -- files -----------------------------------------------------------------------------------

def _file_steps(wanted: dict[Path, tuple[str | None, int]], observed: Observed) -> list[Step]:
    steps: list[Step] = []
    for path, (content, mode) in wanted.items():
        current = observed.files.get(str(path))
        if current != content:
            steps.append(FileStep(path, current, content, mode))
    return steps


# -- daemons --------------------------------------------------------------------------------

def daemon_step(daemon: DaemonDesired, observed: Observed, runtime) -> DaemonStep | None:
    changes = [(path, observed.files.get(str(path)), content, mode)
               for path, (content, mode) in daemon.files.items()
               if observed.files.get(str(path)) != content]
    step = _daemon_step(daemon, observed, runtime, changes)
    if step is not None:
        step.owed_record = runtime.owed_record(daemon.service)
    return step


def _daemon_step(daemon: DaemonDesired, observed: Observed, runtime, changes) -> DaemonStep | None:
    running = observed.running.get(daemon.service) is not None
    spec, backend, hooks = runtime.spec(daemon.service), runtime.backend, runtime.hooks(daemon.service)
    # An action an interrupted apply owes (its files are in place already): done now.
    owed = observed.owed.get(daemon.service)
    if daemon.enabled and daemon.standby:
        if not running and not changes:
            return _settled(spec, backend, owed)
        return DaemonStep(spec, backend, changes, "stop" if running else "none",
                          "standby: this redundant router is not PRIMARY", daemon.checker, running, hooks)
    if not daemon.enabled:
        if not running and not changes:
            return _settled(spec, backend, owed)
        return DaemonStep(spec, backend, changes, "stop" if running else "none",
                          "no longer needed", None, running, hooks)
    if not running:
        seeds = [(path, None, content, mode) for path, (content, mode) in daemon.seed_files.items()
                 if observed.files.get(str(path)) is None]
        return DaemonStep(spec, backend, changes + seeds, "start", "not running", daemon.checker, running,
                          hooks)
    if owed == "restart" or (owed is not None and any(path in daemon.restart_files for path, *_ in changes)):
        return DaemonStep(spec, backend, changes, "restart", "a restart owed since an interrupted apply",
                          daemon.checker, running, hooks)
    if not changes and owed is not None and daemon.reload_action != "none":
        return DaemonStep(spec, backend, changes, daemon.reload_action,
                          f"a {daemon.reload_action} owed since an interrupted apply", daemon.checker, running, hooks)
    if not changes:
        return _settled(spec, backend, owed)
    if any(path in daemon.restart_files for path, *_ in changes):
        names = ", ".join(p.name for p, *_ in changes if p in daemon.restart_files)
        return DaemonStep(spec, backend, changes, "restart", f"{names} changed", daemon.checker, running,
                          hooks)
    names = ", ".join(p.name for p, *_ in changes)
    return DaemonStep(spec, backend, changes, daemon.reload_action, f"{names} changed",
                      daemon.checker, running, hooks)


def _settled(spec, backend, owed: str | None) -> DaemonStep | None:
    """Nothing to do for the daemon; a record of an owed action it no longer needs (it is
    stopped, or its action is none) is cleared by a step that does nothing else."""
    if owed is None:
        return None
    return DaemonStep(spec, backend, [], "none", f"the {owed} owed since an interrupted apply is moot")


# -- netfilter -------------------------------------------------------------------------------

def _is_our_jump(rule: str) -> bool:
    words = rule.split()
    return "-j" in words and is_owned(words[words.index("-j") + 1])


def table_view(policies: dict[str, str], jumps: dict[str, list[str]], chains: dict[str, list[str]]) -> str:
    """What vragent manages in a table, in iptables-save form (for diffs)."""
    lines = [f":{chain} {policy}" for chain, policy in sorted(policies.items())]
    lines += [f":{chain} -" for chain in sorted(chains)]
    for chain in sorted(jumps):
        lines += jumps[chain]
    for chain in sorted(chains):
        lines += chains[chain]
    return "\n".join(lines) + ("\n" if lines else "")


def table_step(desired: TableSpec, observed: ObservedTable) -> IptablesStep | None:
    ops: list[str] = []
    declarations: list[str] = []
    removals: list[str] = []
    touched: set[str] = set()  # every chain this step changes, for reading back
    for chain, policy in sorted(desired.policies.items()):
        if observed.policies.get(chain) != policy:
            ops.append(f"-P {chain} {policy}")
            touched.add(chain)

    current_owned = observed.owned_chains()
    for chain in desired.chains:
        if chain not in current_owned:
            declarations.append(f":{chain} - [0:0]")
            touched.add(chain)

    for builtin, rules in observed.chains.items():
        if is_owned(builtin):
            continue
        wanted = desired.jumps.get(builtin, [])
        ours = [r for r in rules if _is_our_jump(r)]
        if rules[: len(wanted)] == wanted and len(ours) == len(wanted):
            continue
        touched.add(builtin)
        for rule in reversed(ours):
            ops.append("-D" + rule[2:])
        for position, rule in enumerate(wanted, start=1):
            ops.append(f"-I {builtin} {position} " + rule.split(" ", 2)[2])
    for builtin, wanted in desired.jumps.items():
        if builtin not in observed.chains:  # a table the kernel has not loaded yet
            touched.add(builtin)
            for position, rule in enumerate(wanted, start=1):
                ops.append(f"-I {builtin} {position} " + rule.split(" ", 2)[2])

    for chain, rules in desired.chains.items():
        edits = _chain_edits(chain, current_owned.get(chain, []), rules)
        if edits:
            ops += edits
            touched.add(chain)

    for chain in current_owned:
        if chain not in desired.chains:
            removals.append(f"-F {chain}")
            removals.append(f"-X {chain}")
            touched.add(chain)
    # Flush every stale chain before deleting any: they may reference each other.
    removals = [r for r in removals if r.startswith("-F")] + [r for r in removals if r.startswith("-X")]

    script_lines = declarations + ops + removals
    if not script_lines:
        return None
    running = table_view({c: observed.policies.get(c, "ACCEPT") for c in desired.policies},
                         {b: [r for r in rules if _is_our_jump(r)] for b, rules in observed.chains.items()
                          if not is_owned(b)},
                         current_owned)
    wanted_view = table_view(desired.policies, desired.jumps, desired.chains)
    script = f"*{desired.name}\n" + "\n".join(script_lines) + "\nCOMMIT\n"
    undo = None if observed.save_text is not None else _undo_script(observed, desired, touched)
    return IptablesStep(desired.key, script, observed.save_text, running, wanted_view,
                        touched_chains=frozenset(touched), undo_script=undo, family=desired.family)


def _undo_script(old: ObservedTable, desired: TableSpec, touched: set[str]) -> str:
    """Puts the touched chains back as `old` had them, by refilling rather than by position,
    so it holds whatever state a commit or a failed verification left them in. For a
    remembered view (no iptables-save text to restore the table from)."""
    old_owned = old.owned_chains()
    lines = [f":{chain} - [0:0]" for chain in sorted(touched) if chain in old_owned and chain not in desired.chains]
    for chain in sorted(touched):
        if chain in old.policies:
            lines.append(f"-P {chain} {old.policies[chain]}")
    for chain in sorted(touched):
        if chain in old_owned:
            lines.append(f"-F {chain}")
            lines += old_owned[chain]
        elif not is_owned(chain):  # a built-in: our jumps back at its top, foreign rules kept
            for rule in desired.jumps.get(chain, []):
                lines.append("-D" + rule[2:])
            for position, rule in enumerate(old.chains.get(chain, []), start=1):
                lines.append(f"-I {chain} {position} " + rule.split(" ", 2)[2])
    created = [chain for chain in sorted(touched) if is_owned(chain) and chain not in old_owned]
    lines += [f"-F {chain}" for chain in created] + [f"-X {chain}" for chain in created]
    return f"*{old.name}\n" + "\n".join(lines) + "\nCOMMIT\n"


def _chain_edits(chain: str, current: list[str], wanted: list[str]) -> list[str]:
    """Edit a chain in place by rule position; refill it when most of it changes."""
    if current == wanted:
        return []
    import difflib  # only when a chain differs: most applies never get here

    matcher = difflib.SequenceMatcher(a=current, b=wanted, autojunk=False)
    opcodes = [op for op in matcher.get_opcodes() if op[0] != "equal"]
    changed = sum(max(i2 - i1, j2 - j1) for _, i1, i2, j1, j2 in opcodes)
    if not current or changed > REFILL_RATIO * max(len(wanted), 1):
        return ([f"-F {chain}"] if current else []) + wanted
    edits: list[str] = []
    # Work from the end of the chain so earlier positions stay valid.
    for tag, i1, i2, j1, j2 in reversed(opcodes):
        for position in range(i2, i1, -1):
            edits.append(f"-D {chain} {position}")
        for offset, rule in enumerate(wanted[j1:j2]):
            edits.append(f"-I {chain} {i1 + 1 + offset} " + rule.split(" ", 2)[2])
    return edits


# -- conntrack -------------------------------------------------------------------------------

def conntrack_steps(old: RouterState, new: RouterState) -> list[Step]:
    """Flows of NAT rules that are gone or now point elsewhere; never a full flush."""
    steps: list[Step] = []
    if old.port_forwards is new.port_forwards and old.static_nats is new.static_nats:
        return steps  # the same rules (a re-applied push): nothing was revoked
    kept_forwards = set(new.port_forwards)
    for rule in old.port_forwards:
        if rule not in kept_forwards:
            steps.append(ConntrackDeleteStep(_forward_filters(rule),
                                             f"port forwarding {rule.public_ip} {rule.protocol.value} {rule.public_ports}"))
    kept_nats = set(new.static_nats)
    for nat in old.static_nats:
        if nat not in kept_nats:
            steps.append(ConntrackDeleteStep([["--orig-dst", str(nat.public_ip)],
                                              ["--orig-src", str(nat.internal_ip), "--reply-dst", str(nat.public_ip)]],
                                             f"static NAT {nat.public_ip} -> {nat.internal_ip}"))
    return steps


def _forward_filters(rule: PortForward) -> list[list[str]]:
    base = ["-p", rule.protocol.value, "--orig-dst", str(rule.public_ip)]
    if rule.public_ports.size <= 64:
        return [base + ["--orig-port-dst", str(port)]
                for port in range(rule.public_ports.first, rule.public_ports.last + 1)]
    # conntrack filters single ports only; for a wide range forget the translated flows instead.
    return [["-p", rule.protocol.value, "--orig-dst", str(rule.public_ip), "--reply-src", str(rule.internal_ip)]]
