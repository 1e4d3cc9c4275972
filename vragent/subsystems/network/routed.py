"""Whether the router is a routed network's (CloudStack's ROUTED mode, 4.20+): the cmdline's
`is_routed=true` (createGuestBootLoadArgs for an isolated network, the VPC router's boot
arguments for a ROUTED VPC offering). Such a router routes its guests without NAT;
subsystems/bgp/verify.py says what it refuses, the firewall and VPC rules what differs."""

from __future__ import annotations

from vragent.model import ISOLATED_ROUTER, VPC_ROUTER, RouterState

ROUTED_KEY = "is_routed"


def is_routed(state: RouterState) -> bool:
    return (state.router_type in (ISOLATED_ROUTER, VPC_ROUTER)
            and state.config.get(ROUTED_KEY, "false").lower() == "true")
