"""Plans told to people: the dry-run a person can read, and drift item by item (pure).

A dry-run prints, per table, only the rules that change, in hunks that name their chain
(a few unchanged neighbours around each); per file a unified diff; the state as the
sections that change, one entry a line. `differences(step)` says what is there and what
should be, one line each, for `vragent status` and for the log of what an apply repaired.
"""

from __future__ import annotations

import difflib
import json

CONTEXT = 2  # unchanged rules or lines shown around each change


# -- netfilter tables ------------------------------------------------------------------------

def _parse_view(view: str, only=None) -> tuple[dict[str, str], list[str], dict[str, list[str]]]:
    """A plan.table_view text -> (policies, declared chains, rules per chain in order);
    with `only`, just those chains."""
    policies: dict[str, str] = {}
    declared: list[str] = []
    rules: dict[str, list[str]] = {}
    for line in view.splitlines():
        head, chain, _ = (line + "  ").split(" ", 2)
        if head.startswith(":"):
            chain, policy = head[1:], chain
            if only is not None and chain not in only:
                continue
            if policy == "-":
                declared.append(chain)
            else:
                policies[chain] = policy
        elif head == "-A" and (only is None or chain in only):
            rules.setdefault(chain, []).append(line)
    return policies, declared, rules


def _chain_hunks(chain: str, old: list[str], new: list[str], context: int = CONTEXT) -> list[str]:
    lines: list[str] = []
    matcher = difflib.SequenceMatcher(a=old, b=new, autojunk=False)
    for group in matcher.get_grouped_opcodes(context):
        lines.append(f"@@ chain {chain} from rule {group[0][3] + 1} ({len(old)} -> {len(new)} rules) @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                lines += [f" {rule}" for rule in old[i1:i2]]
                continue
            lines += [f"-{rule}" for rule in old[i1:i2]]
            lines += [f"+{rule}" for rule in new[j1:j2]]
    return lines


def table_diff(name: str, running_view: str, desired_view: str) -> str:
    """Only what changes in one table: policies, chains created or removed, rules by chain."""
    old_policies, old_chains, old_rules = _parse_view(running_view)
    new_policies, new_chains, new_rules = _parse_view(desired_view)
    lines: list[str] = []
    for chain in sorted(set(old_policies) | set(new_policies)):
        if old_policies.get(chain) != new_policies.get(chain):
            lines.append(f"@@ policy {chain} @@")
            if chain in old_policies:
                lines.append(f"-:{chain} {old_policies[chain]}")
            if chain in new_policies:
                lines.append(f"+:{chain} {new_policies[chain]}")
    for chain in sorted(set(new_chains) - set(old_chains)):
        lines.append(f"@@ new chain {chain} ({len(new_rules.get(chain, []))} rules) @@")
        lines += [f"+{rule}" for rule in new_rules.get(chain, [])]
    for chain in sorted(set(old_chains) - set(new_chains)):
        lines.append(f"@@ chain {chain} removed ({len(old_rules.get(chain, []))} rules) @@")
        lines += [f"-{rule}" for rule in old_rules.get(chain, [])]
    for chain in sorted((set(old_rules) | set(new_rules)) - (set(new_chains) ^ set(old_chains))):
        old, new = old_rules.get(chain, []), new_rules.get(chain, [])
        if old != new:
            lines += _chain_hunks(chain, old, new)
    if not lines:
        return ""
    return f"--- {name} (running)\n+++ {name} (desired)\n" + "\n".join(lines) + "\n"


def table_differences(name: str, running_view: str, desired_view: str, only=None) -> list[str]:
    """One line per drifted rule, policy or chain: what is there vs what should be
    (`only`: just these chains, the ones a step touches)."""
    only = only or None
    old_policies, old_chains, old_rules = _parse_view(running_view, only)
    new_policies, new_chains, new_rules = _parse_view(desired_view, only)
    out: list[str] = []
    for chain in sorted(set(old_policies) | set(new_policies)):
        if old_policies.get(chain) != new_policies.get(chain):
            out.append(f"{name}: policy {chain} is {old_policies.get(chain, 'unset')}, "
                       f"should be {new_policies.get(chain, 'unset')}")
    for chain in sorted(set(new_chains) - set(old_chains)):
        out.append(f"{name}: chain {chain} is missing ({len(new_rules.get(chain, []))} rules)")
    for chain in sorted(set(old_chains) - set(new_chains)):
        out.append(f"{name}: chain {chain} should not exist")
    for chain in sorted((set(old_rules) | set(new_rules)) - (set(new_chains) ^ set(old_chains))):
        old, new = old_rules.get(chain, []), new_rules.get(chain, [])
        if old == new:
            continue
        # Sets, not a sequence diff: this runs after every apply (the log), on chains of thousands.
        old_set, new_set = set(old), set(new)
        missing = [f"{name}: missing rule {rule} (should be at {chain} position {j + 1})"
                   for j, rule in enumerate(new) if rule not in old_set]
        unexpected = [f"{name}: unexpected rule {rule} (at {chain} position {i + 1})"
                      for i, rule in enumerate(old) if rule not in new_set]
        out += missing + unexpected
        if not missing and not unexpected:  # the same rules, in another order (or counts)
            out.append(f"{name}: the rules of {chain} are out of order ({len(old)} there, {len(new)} wanted)")
    return out


# -- files -----------------------------------------------------------------------------------

def _private(mode: int) -> bool:
    return not mode & 0o044


def file_differences(path, old: str | None, new: str | None, mode: int) -> list[str]:
    if old is None:
        return [f"file {path} is missing"]
    if new is None:
        return [f"file {path} should not exist"]
    if _private(mode):
        return [f"file {path} differs (private, mode {mode:04o}; content not shown)"]
    changed = [line for line in difflib.unified_diff(old.splitlines(), new.splitlines(), lineterm="", n=0)
               if line[:1] in "+-" and not line.startswith(("+++", "---"))]
    shown = [f"file {path}: there {line[1:]!r}" if line[0] == "-" else f"file {path}: should be {line[1:]!r}"
             for line in changed[:10]]
    if len(changed) > 10:
        shown.append(f"file {path}: ... {len(changed) - 10} more changed line(s)")
    return shown


# -- any step --------------------------------------------------------------------------------

def differences(step) -> list[str]:
    """What differs for one plan step, one line each (what is there vs what should be)."""
    kind = step.kind
    if kind == "iptables":
        return table_differences(f"{step._tool} {step._kernel_table}", step.running_view, step.desired_view,
                                 step.touched_chains)
    if kind == "file":
        return file_differences(step.path, step.old, step.new, step.mode)
    if kind == "service":
        lines = [line for path, old, new, mode in step.changes for line in file_differences(path, old, new, mode)]
        running = "running" if step.was_running else "not running"
        return lines + [f"service {step.service.name}: {running}; needs {step.action} ({step.reason})"]
    if kind == "sysctl":
        return [f"sysctl {step.key} is {step.old}, should be {step.new}"]
    if kind == "address":
        if step.add:
            return [f"address {step.interface} on {step.device} is missing"]
        return [f"address {step.interface} on {step.device} should not be there"]
    if kind == "route" and hasattr(step, "old"):
        from vragent.steps import _route_text

        return [f"{'IPv6 ' if step.family == 6 else ''}{_route_text(step.old)} is there, "
                f"should be {_route_text(step.new)}"]
    if kind in ("route", "rule") and hasattr(step, "add"):
        thing = f"{'ip rule' if kind == 'rule' else 'route'} {getattr(step, 'rule', None) or step.route}"
        return [f"{thing} is missing" if step.add else f"{thing} should not be there"]
    if kind == "link" and hasattr(step, "up"):
        return [f"link {step.device} is {'down' if step.up else 'up'}, should be {'up' if step.up else 'down'}"]
    if kind == "link":
        return [f"mtu of {step.device} is {step.old}, should be {step.new}"]
    return [step.summary()]


def log_lines(steps, limit: int = 20) -> list[str]:
    """What an apply changed or repaired, named: at most `limit` lines a step."""
    lines: list[str] = []
    for step in steps:
        found = differences(step)
        lines += found[:limit]
        if len(found) > limit:
            lines.append(f"{step.summary()}: ... and {len(found) - limit} more")
    return lines


def dry_run_text(steps) -> str:
    """Every step's change, readable: tables and files as diffs, the rest as one line."""
    parts = []
    for step in steps:
        if step.kind == "iptables":
            parts.append(table_diff(f"{step._tool}/{step._kernel_table}", step.running_view, step.desired_view)
                         or step.summary() + "\n")
        else:
            parts.append(step.diff())
    return "".join(parts)


# -- the persisted state -----------------------------------------------------------------------

def _compact(value) -> str:
    return json.dumps(value, sort_keys=True, separators=(", ", ": "))


LONGEST = 400  # characters of one entry shown (user-data, certificates: the rest is elided)


def _shortened(line: str) -> str:
    return line if len(line) <= LONGEST else f"{line[:LONGEST]}... ({len(line)} characters)"


def _section_new(path: str, value, out: list[str]) -> None:
    """A section or member that appears: entry by entry, member by member, never one blob."""
    if isinstance(value, (dict, list)) and value:
        _value_diff(path, type(value)(), value, out)
    else:
        out += [f"@@ {path} added @@", f"+{_shortened(_compact(value))}"]


def _section_gone(path: str, value, out: list[str]) -> None:
    if isinstance(value, (dict, list)) and value:
        _value_diff(path, value, type(value)(), out)
    else:
        out += [f"@@ {path} removed @@", f"-{_shortened(_compact(value))}"]


def _value_diff(path: str, old, new, out: list[str]) -> None:
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new:
                _section_gone(f"{path}.{key}", old[key], out)
            elif key not in old:
                _section_new(f"{path}.{key}", new[key], out)
            else:
                _value_diff(f"{path}.{key}", old[key], new[key], out)
        return
    if isinstance(old, list) and isinstance(new, list):
        a, b = [_compact(v) for v in old], [_compact(v) for v in new]
        matcher = difflib.SequenceMatcher(a=a, b=b, autojunk=False)
        changes = [op for op in matcher.get_opcodes() if op[0] != "equal"]

        def in_place(tag, i1, i2, j1, j2) -> bool:  # entries changed where they are: show what in them
            return (tag == "replace" and i2 - i1 == j2 - j1
                    and all(isinstance(v, dict) for v in old[i1:i2] + new[j1:j2]))

        changed = sum(i2 - i1 for op in changes if in_place(*op) for _, i1, i2, _, _ in [op])
        added = sum(j2 - j1 for op in changes if not in_place(*op) for _, _, _, j1, j2 in [op])
        removed = sum(i2 - i1 for op in changes if not in_place(*op) for _, i1, i2, _, _ in [op])
        counts = ", ".join(f"{n} {what}" for n, what in ((added, "added"), (removed, "removed"), (changed, "changed"))
                           if n or what != "changed")
        out.append(f"@@ {path}: {len(old)} -> {len(new)} entries ({counts}) @@")
        for op in changes:
            tag, i1, i2, j1, j2 = op
            if in_place(*op):
                for offset in range(i2 - i1):
                    _value_diff(f"{path}[{j1 + offset}]", old[i1 + offset], new[j1 + offset], out)
                continue
            out += [f"-{_shortened(line)}" for line in a[i1:i2]]
            out += [f"+{_shortened(line)}" for line in b[j1:j2]]
        return
    out.append(f"@@ {path} @@")
    out.append(f"-{_shortened(_compact(old))}")
    out.append(f"+{_shortened(_compact(new))}")


def state_diff(old_text: str, new_text: str, old_label: str, new_label: str) -> str:
    """The persisted document's sections that change, entry by entry (never one long line)."""
    try:
        old = json.loads(old_text) if old_text.strip() else {}
        new = json.loads(new_text)
    except ValueError:
        return "".join(difflib.unified_diff(old_text.splitlines(keepends=True), new_text.splitlines(keepends=True),
                                            fromfile=old_label, tofile=new_label))
    lines: list[str] = []
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            if key not in new:
                _section_gone(key, old[key], lines)
            elif key not in old:
                _section_new(key, new[key], lines)
            else:
                _value_diff(key, old[key], new[key], lines)
    else:
        _value_diff("$", old, new, lines)
    if not lines:
        return ""
    return f"--- {old_label}\n+++ {new_label}\n" + "\n".join(lines) + "\n"
