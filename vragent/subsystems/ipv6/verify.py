"""IPv6 rules and settings checked against the router (pure)."""

from __future__ import annotations


from vragent.errors import ValidationError
from vragent.model import RouterState
from vragent.subsystems.ipv6.ipv6firewallrules import GuestCidrClaim


def check_ipv6(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """IPv6 rules need the router's guest IPv6 network, and must be for that network."""
    ipv6 = state.ipv6
    errors = []
    claims = [(item, path) for item, path in origins.values() if isinstance(item, GuestCidrClaim)]
    if ipv6 is None:
        pushed = [path for item, path in origins.values() if any(item is r for r in state.ipv6_firewall_rules)]
        if pushed or claims:
            errors.append(ValidationError((pushed or [p for _, p in claims])[0],
                                          "this router has no guest IPv6 network (cmdline eth0ip6)"))
        return errors
    for claim, path in claims:
        if claim.network != ipv6.guest_network:
            errors.append(ValidationError(path, f"{claim.network} is not this router's guest IPv6 network "
                                                f"{ipv6.guest_network}"))
    return errors
