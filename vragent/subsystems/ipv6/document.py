"""The `ipv6_firewall` section of the state document."""

from __future__ import annotations

from vragent.model import RouterState
from vragent.fields import ports_text

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any


# Left out while empty, so IPv4-only routers keep the document they always had.
IPV6_FIREWALL = "ipv6_firewall"


def ipv6_firewall_document(state: RouterState) -> dict[str, Any]:
    if not state.ipv6_firewall_rules and state.ipv6_egress_default_allow:
        return {}
    return {IPV6_FIREWALL: {
        "egress_default_allow": state.ipv6_egress_default_allow,
        "rules": [{"id": r.id, "direction": r.direction.value, "protocol": r.protocol.value,
                   "ports": ports_text(r.ports), "icmp_type": r.icmp_type, "icmp_code": r.icmp_code,
                   "source_cidrs": [str(c) for c in r.source_cidrs], "dest_cidrs": [str(c) for c in r.dest_cidrs]}
                  for r in state.ipv6_firewall_rules],
    }}
