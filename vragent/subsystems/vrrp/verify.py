"""A redundant pair's settings checked against the rest of the router (pure)."""

from __future__ import annotations

from vragent.errors import ValidationError
from vragent.model import RouterState
from vragent.subsystems.vrrp.model import ADVERT_INT_RANGE, enabled


def check_state(state: RouterState, origins: dict | None = None) -> list[ValidationError]:
    """Refuse what could make the pair disagree on the VRID or the VIPs (two masters).

    `origins` as validate.check_state takes it: where the items of this push came from."""
    if not enabled(state):
        return []
    from vragent.errors import origin_of
    from vragent.subsystems.network import cmdline as cmdline_wire

    origins = origins or {}
    cmdline = origin_of(origins, cmdline_wire.ORIGIN, "state:cmdline")
    cfg = state.config
    errors: list[ValidationError] = []

    def error(key: str, message: str) -> None:
        errors.append(ValidationError(f"{cmdline}.{key}", message))

    router_id = cfg.get("router_id")
    if not router_id:
        error("router_id", "is required on a redundant router: both routers derive their VRRP "
                           "virtual router id (VRID 1..255) from it")
    elif not router_id.isdigit() or int(router_id) < 1:
        error("router_id", f"{router_id!r} is not a positive integer; the VRID (1..255) is derived from it")
    priority = cfg.get("router_pr")
    if priority is not None and not (priority.isdigit() and 1 <= int(priority) <= 254):
        error("router_pr", f"{priority!r} is not a VRRP priority 1..254 (255 means address owner "
                           "and would preempt the peer)")
    advert = cfg.get("advert_int")
    low, high = ADVERT_INT_RANGE
    if advert is not None and not (advert.isdigit() and low <= int(advert) <= high):
        error("advert_int", f"{advert!r} is not an advertisement interval of {low}..{high} whole seconds "
                            "(VRRPv2; the backup takes over after 3 x advert_int)")
    password = cfg.get("router_password")
    if password is not None and (not password or any(c.isspace() or c in "\"'#!\\" or not c.isprintable()
                                                     for c in password)):
        error("router_password", "must be printable, without spaces, quotes, '#', '!' or backslashes "
                                 "(it becomes keepalived's auth_pass)")

    guests = state.all_guest_networks()
    if not guests:
        error("redundant_router", "a redundant router needs a guest network: VRRP runs on the guest NIC")
    elif guests[0].device in state.public_devices():
        # VRRP bound to a public NIC never hears the peer while the backup keeps it down (#3402).
        network = guests[0]
        errors.append(ValidationError(origin_of(origins, network, f"state:guest_networks[{network.device}]") + ".device",
                                      f"VRRP would run on {network.device}, which also holds public IPs; "
                                      "it must run on a guest-only NIC"))
    for network in guests:
        from_cmdline = network not in state.guest_networks
        if from_cmdline:
            path = f"{cmdline}.guestgw"
        else:
            path = origin_of(origins, network, f"state:guest_networks[{network.device}]") + ".router_guest_gateway"
        vip = network.gateway
        if from_cmdline and not cfg.get("guestgw"):
            errors.append(ValidationError(path, "is required on a redundant router: it is the VRRP VIP "
                                                "the guests use as their gateway"))
        elif vip == network.router_ip:
            errors.append(ValidationError(path, f"the VIP {vip} is this router's own guest address "
                                                f"({network.device}); on a redundant pair the gateway must "
                                                "differ from each router's own address, or both answer for it"))
        elif vip not in network.network:
            errors.append(ValidationError(path, f"the VIP {vip} is outside the guest network {network.network}"))
        elif vip in (network.network.network_address, network.network.broadcast_address):
            errors.append(ValidationError(path, f"the VIP {vip} is the network or broadcast address "
                                                f"of {network.network}"))
    return errors
