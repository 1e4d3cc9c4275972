"""Checks lab tests share: the convergence every apply ends with, a TCP probe, and the
router's policy routing as `ip` shows it."""

from __future__ import annotations

import json
from typing import Any, Callable

from vragent.lab.agent import ApplyResult, RouterAgent
from vragent.lab.traffic import tcp_connect


def apply_ok(router: RouterAgent, *payloads: Any, observe: Callable[[RouterAgent], Any] | None = None) -> ApplyResult:
    """Apply, then prove convergence: the same push again changes nothing at all, both as
    remembered (memos) and with every table read back and compared (--full): no step, the
    same ruleset, and the same `observe(router)` (routes, daemon PIDs, files) when given."""
    first = router.apply(*payloads)
    assert first.returncode == 0, (first.errors, first.stderr)

    def look() -> tuple:
        return router.iptables_save(), observe(router) if observe is not None else None

    before = look()
    for again in router.reapply(*payloads):
        assert again.returncode == 0, again.errors
        assert again.result["status"] == "unchanged" and again.steps == [], again.steps
    assert look() == before
    return first


def connects(lab, role: str, dst: str, port: int, source: str | None = None) -> bool:
    return tcp_connect(lab, role, dst, port, timeout=1.0, source=source).ok


def policy(lab, table: str) -> tuple[list[str], list[str]]:
    """The router's rules into routing `table` ("priority mark-or-source") and that table's
    routes ("type destination device"), sorted."""
    rules = json.loads(lab.run("vr", ["ip", "-N", "-j", "rule"]).stdout)
    shown = lab.run("vr", ["ip", "-N", "-j", "route", "show", "table", table], check=False)
    return ([f"{r['priority']} {r.get('fwmark') or r['src']}" for r in rules if r["table"] == table],
            sorted(f"{r.get('type', 'unicast')} {r['dst']} {r.get('dev', '')}".strip()
                   for r in (json.loads(shown.stdout) if shown.returncode == 0 else [])))
