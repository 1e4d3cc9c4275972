"""Whole-router golden cases: one self-contained file per case (its description, its pushes and
everything the agent makes of them), so a change anywhere in the pipeline shows as a diff here.

Each case in golden_router/ records, for its pushes merged into an empty router:
- every table as iptables-restore input (IPv4 and IPv6), the sysctls, the link plan
  (addresses, routes, policy rules, MTU, admin state, foreign addresses);
- every file the router writes (path under the root -> lines, mode), every daemon's desired
  state (enabled, standby, restart files, reload action, seed files, owned directories);
- the state document exactly as it is persisted (installed routers read it back unchanged);
- the plan against a bare router (the case's NICs, nothing else): step kinds and summaries in
  order, and the errors of a push the agent refuses.

Regenerate after an intended change with VRAGENT_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit import golden
from tests.unit.router_golden import render_router

GOLDEN = Path(__file__).parent / "golden_router"
CASES = sorted(GOLDEN.glob("*.json"))


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_whole_router_golden(case: Path, tmp_path: Path):
    golden.check(case, lambda data: render_router(data["pushes"], tmp_path))


def test_every_router_type_and_feature_has_a_golden_case():
    assert len(CASES) >= 26
    kinds = {json.loads(c.read_text())["expected"].get("router_type") for c in CASES}
    assert {"router", "vpcrouter", "dhcpsrvr"} <= kinds
    refused = [c for c in CASES if json.loads(c.read_text())["expected"].get("errors")]
    assert refused, "refused pushes need golden cases of their errors too"
