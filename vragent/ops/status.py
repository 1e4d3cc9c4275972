"""`vragent status`: what the router runs, and whether it still matches the committed state.

version, the last push that changed the router (name, time, result), the state's
fingerprint, each daemon's health, the VRRP role, and drift: a fresh plan against the
persisted state (empty when the live router is exactly what was committed), each
drifted rule, file, address, route and sysctl named with what is there and what should be.
`vragent status` exits 3 when there is drift.
"""

from __future__ import annotations

import json

from vragent import __version__, engine
from vragent.shell import files
from vragent.shell.history import last_apply_path
from vragent.paths import Paths
from vragent.pipeline.plan import build


def collect(paths: Paths) -> dict:
    import hashlib

    text = files.read_text(paths.state)
    report: dict = {"version": __version__, "state": str(paths.state),
                    "fingerprint": "sha256:" + hashlib.sha256(text.encode()).hexdigest() if text else None}
    last = files.read_text(last_apply_path(paths))
    report["last_apply"] = json.loads(last) if last else None
    state = engine.load_state(paths)
    desired = engine.render(state, paths)
    observed = engine.observe_for(desired)
    report["daemons"] = {
        d.service: {"wanted": d.enabled and not d.standby, "standby": d.standby,
                         "pid": observed.running.get(d.service),
                         "healthy": (observed.running.get(d.service) is not None) == (d.enabled and not d.standby)}
        for d in desired.daemons}
    from vragent.ops import failover

    pair = failover.status(paths)
    report["vrrp"] = pair["status"] if pair["redundant"] else "n/a"
    if pair["redundant"]:
        report["redundancy"] = pair
    from vragent.pipeline.explain import differences

    drift = build(desired, observed)
    # Each drifted rule, file, address, route and sysctl: what is there vs what should be.
    report["drift"] = [{"kind": step.kind, "summary": step.summary(), "differences": differences(step)}
                       for step in drift.steps]
    report["notes"] = drift.notes
    return report


def format_text(report: dict) -> str:
    lines = [f"vragent {report['version']}",
             f"state: {report['state']} {report['fingerprint'] or '(none committed)'}"]
    last = report["last_apply"]
    lines.append("last change: " + (f"{', '.join(last['push'])} at {last['time']}: {last['status']} "
                                    f"({last['steps']} steps, {last['duration_ms']:.0f} ms)" if last else "none"))
    for name, daemon in report["daemons"].items():
        health = ("running" if daemon["pid"] else "not running") + ("" if daemon["healthy"] else " (unexpected)")
        wanted = "wanted" if daemon["wanted"] else ("standby (not PRIMARY)" if daemon.get("standby") else "not wanted")
        lines.append(f"daemon {name}: {wanted}, {health}"
                     + (f" (pid {daemon['pid']})" if daemon["pid"] else ""))
    lines.append(f"vrrp: {report['vrrp']}")
    pair = report.get("redundancy")
    if pair:
        lines.append(f"  {pair['reason'] or 'no transition yet'}; {pair['transitions']} transition(s); "
                     f"VRID {pair['vrid']} on {pair['interface']}, priority {pair['priority']}, "
                     f"advert_int {pair['advert_int']} s; VIPs {', '.join(pair['vips'])}; "
                     f"pair fingerprint {pair['fingerprint']}")
    count = sum(len(item["differences"]) for item in report["drift"])
    lines.append("drift: none" if not report["drift"] else
                 f"drift: {count} difference(s) from the committed state (`vragent restore` repairs them; "
                 "`vragent restore --dry-run` shows how)")
    for item in report["drift"]:
        lines += [f"  {line}" for line in item["differences"]]
    return "\n".join(lines) + "\n"
