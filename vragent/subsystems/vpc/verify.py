"""A VPC's network ACLs checked against its tiers and private gateways (pure)."""

from __future__ import annotations


from vragent.errors import ValidationError
from vragent.model import RouterState


def check_network_acls(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """An ACL pushed now is for a tier or a private gateway of this VPC router."""
    errors: list[ValidationError] = []
    tiers = {n.device for n in state.all_guest_networks()}
    gateways = {p.device for p in state.private_gateways}
    for acl in state.network_acls:
        found = origins.get(id(acl))
        if found is None or found[0] is not acl:
            continue
        path = f"{found[1]}.device"
        if not state.is_vpc:
            errors.append(ValidationError(path, "network ACLs are for VPC routers (cmdline type vpcrouter); "
                                                "an isolated router has firewallrules"))
        elif acl.device not in tiers | gateways:
            errors.append(ValidationError(path, f"{acl.device} is no tier or private gateway of this router "
                                                f"(tiers: {', '.join(sorted(tiers)) or 'none'}; private gateways: "
                                                f"{', '.join(sorted(gateways)) or 'none'})"))
    return errors
