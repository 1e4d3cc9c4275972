"""VM data and passwords checked against the router's guest networks (pure)."""

from __future__ import annotations


from vragent.errors import ValidationError
from vragent.model import RouterState, VmData


def check_vm_services(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """Metadata and passwords are served to a VM of a guest network this router serves.

    Only what this push brought is checked: data persisted earlier whose network has gone
    since is simply not served (subsystems/guestdata/render.py), so it never blocks a later push."""
    subnets = [s.network for s in state.guest_subnets()]
    router_addresses = set(state.own_guest_addresses())
    errors: list[ValidationError] = []
    for item in (*state.vm_data, *state.password_offers):
        found = origins.get(id(item))
        if found is None or found[0] is not item:
            continue
        path = found[1] + (".vm_ip_address" if isinstance(item, VmData) else ".ip_address")
        if not any(item.ip in network for network in subnets):
            errors.append(ValidationError(path, f"{item.ip} is in no guest network of this router"))
        elif item.ip in router_addresses:
            errors.append(ValidationError(path, f"{item.ip} is the router's own guest address"))
    return errors
