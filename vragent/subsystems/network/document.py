"""The network subsystem's sections of the state document that stand on their own (ip_aliases)."""

from __future__ import annotations

from vragent.model import RouterState

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any


# Left out while empty, like the IPv6 firewall: only a shared network's router has them.
IP_ALIASES = "ip_aliases"


def ip_aliases_document(state: RouterState) -> dict[str, Any]:
    if not state.ip_aliases:
        return {}
    return {IP_ALIASES: [{"ip": str(a.ip), "prefix": a.prefix} for a in state.ip_aliases]}
