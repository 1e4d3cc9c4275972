"""The network subsystem's sections of the state document that stand on their own (ip_aliases),
and a dual-stack VPC tier's `ipv6` object (guest_networks[].ipv6)."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Interface

from vragent.errors import ValidationError
from vragent.model import RouterState, TierIpv6

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any


# Left out while empty, like the IPv6 firewall: only a shared network's router has them.
IP_ALIASES = "ip_aliases"


def ip_aliases_document(state: RouterState) -> dict[str, Any]:
    if not state.ip_aliases:
        return {}
    return {IP_ALIASES: [{"ip": str(a.ip), "prefix": a.prefix} for a in state.ip_aliases]}


def tier_document(ipv6: TierIpv6 | None) -> dict[str, Any]:
    if ipv6 is None:
        return {}
    return {"ipv6": {"address": str(ipv6.address), "gateway": str(ipv6.gateway), "dns": [str(d) for d in ipv6.dns],
                     "public": str(ipv6.public) if ipv6.public else None,
                     "upstream_gateway": str(ipv6.upstream_gateway) if ipv6.upstream_gateway else None}}


def tier_trusted(raw: dict | None) -> TierIpv6 | None:
    if not raw:
        return None
    return TierIpv6(IPv6Interface(raw["address"]), IPv6Address(raw["gateway"]),
                    tuple(IPv6Address(d) for d in raw.get("dns", [])),
                    IPv6Interface(raw["public"]) if raw.get("public") else None,
                    IPv6Address(raw["upstream_gateway"]) if raw.get("upstream_gateway") else None)


def tier_checked(raw: Any, path: str, errors: list[ValidationError]) -> TierIpv6 | None:
    """A native document's tier `ipv6` object; errors name their paths."""
    if raw is None:
        return None
    try:
        return tier_trusted(raw)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        errors.append(ValidationError(f"{path}.ipv6", f"is not a tier's IPv6 object "
                                                      f"(address, gateway, dns, public, upstream_gateway): {exc}"))
        return None
