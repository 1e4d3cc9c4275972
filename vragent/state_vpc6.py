"""The state document's part for dual-stack VPC tiers: a tier's `ipv6` object and an ACL
item's `cidrs6` (the state.json schema's guest_networks[].ipv6 and network_acls[].*[].cidrs6)."""

from __future__ import annotations

from ipaddress import IPv6Address, IPv6Interface, IPv6Network
from typing import Any

from vragent.errors import ValidationError
from vragent.model import TierIpv6


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


def cidrs6_document(cidrs6: tuple[IPv6Network, ...]) -> dict[str, Any]:
    return {"cidrs6": [str(c) for c in cidrs6]} if cidrs6 else {}


def cidrs6_checked(raw: Any, path: str, errors: list[ValidationError]) -> tuple[IPv6Network, ...]:
    if raw is None:
        return ()
    try:
        return tuple(IPv6Network(c) for c in raw)
    except (ValueError, TypeError) as exc:
        errors.append(ValidationError(f"{path}.cidrs6", f"expected a list of IPv6 CIDRs: {exc}"))
        return ()
