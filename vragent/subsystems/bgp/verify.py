"""Routed networks (CloudStack's ROUTED network mode, 4.20+): guests routed, never NAT'ed.

The management server says so on the boot cmdline: `is_routed=true`
(VirtualNetworkApplianceManagerImpl.createGuestBootLoadArgs for an isolated network,
VpcVirtualNetworkApplianceManagerImpl for a VPC whose offering is ROUTED). A ROUTED
offering has no SourceNat, StaticNat, Lb, PortForwarding or Vpn service
(ConfigurationManagerImpl, VpcManagerImpl); its router still has a public NIC and a
public IP (the Gateway service), which it routes through without NAT.

Firewall semantics, after the incumbent's `ip4_firewall` (isolated) and `ip4_acl` (VPC)
nftables tables (configure.py add_routing_rules, AclDevice.__process_routing_ip4):
- isolated: routing firewall rules (RoutedIpv4ManagerImpl.createRoutingFirewallRule) come
  in firewall_rules.json with the egress rules; an ingress one has no `src_ip` (no public
  IP: FirewallRulesDao.listRoutingIngressFirewallRules) and admits `source_cidr_list` to
  `dest_cidr_list` inside the guest network; anything else into the guest network is
  dropped. Egress is the network's egress firewall with its default policy, as in NAT mode.
- VPC: the tiers' network ACLs, as in NAT mode, except that egress not allowed by a rule
  is dropped (the incumbent ends each routed ACL chain, ingress and egress, with drop).
Unlike the incumbent, replies of allowed connections pass (it had no established rule in
those tables, and left FORWARD open when a network had no rule at all).
"""

from __future__ import annotations

from vragent.errors import ValidationError
from vragent.model import Direction, RouterState
from vragent.subsystems.network.routed import is_routed


def check_routed(state: RouterState, origins: dict[int, tuple[object, str]]) -> list[ValidationError]:
    """What a routed router cannot hold (NAT services), what only it can (routing firewall
    rules, BGP peers), after the merge: the cmdline may come in the same push."""
    from vragent.errors import origin_of

    errors: list[ValidationError] = []
    routed = is_routed(state)

    def refuse(item, fallback: str, message: str, key: str = "") -> None:
        path = origin_of(origins, item, fallback)
        errors.append(ValidationError(f"{path}.{key}" if key else path, message))

    for rule in state.firewall_rules:
        if rule.direction is not Direction.INGRESS:
            continue
        if routed and rule.public_ip is not None:
            refuse(rule, f"state:firewall_rules[{rule.id}]", f"{rule.public_ip}: a routed network has no "
                   "public-IP firewall; its ingress rules have no src_ip (routing firewall rules)", "src_ip")
        elif not routed and rule.public_ip is None:
            refuse(rule, f"state:firewall_rules[{rule.id}]", "is required (an ingress rule without a public IP "
                   "is a routed network's, and this router's cmdline has no is_routed=true)", "src_ip")
    if routed:
        why = "a routed network has no NAT services (SourceNat/StaticNat/Lb/PortForwarding/Vpn are refused " \
              "in ROUTED mode)"
        for forward in state.port_forwards:
            refuse(forward, "state:port_forwards", f"port forwarding: {why}")
        for nat in state.static_nats:
            refuse(nat, "state:static_nats", f"static NAT: {why}")
        if state.remote_access_vpn is not None:
            refuse(state.remote_access_vpn, "state:remote_access_vpn", f"remote-access VPN: {why}")
        if state.load_balancing.accepts():
            errors.append(ValidationError("state:load_balancing", f"load balancing: {why}"))
    elif state.bgp_peers:
        refuse(state.bgp_peers[0], "state:bgp_peers", "BGP peers need a routed network or VPC (cmdline "
               "is_routed=true; dynamic routing is a ROUTED offering's)")
    return errors

