"""Site-to-site VPN (`site2sitevpn`, VPC routers): charon's connections and the firewall (pure).

The connections go into the same charon-systemd and the same swanctl.conf as the
remote-access VPN (subsystems/vpn/render.py, subsystems/vpn/service.py): one daemon, one file loaded
with `swanctl --load-all --clear`, so adding, changing or removing one peer reloads the
file over vici and never restarts charon; the other peers keep their SAs.

Per peer (named `vpn-<peer>`, the incumbent's name): IKE from the local public IP to the
peer gateway, PSK with both IPs as identities, the pushed proposals, lifetimes as
rekey times, DPD 30 s / 120 s with restart, forced UDP encapsulation when `encap`; one
CHILD_SA in tunnel mode VPC <-> the peer's CIDRs (one per CIDR with
`split_connections`), trapped (`start_action = trap`: the first packet brings it up, as
the incumbent's `auto=route`), or waiting for the peer when `passive` (which the
incumbent ignored).

iptables (vragent-owned chains, as iptables-save prints them):
  filter vr-INPUT -> vr-s2s: udp 500, 4500 and ESP from each peer to its local IP on the
         public NIC; nothing else of the peer's reaches the router.
  nat POSTROUTING -> vr-s2s-nonat, jumped before vr-snat: VPC -> peer CIDR out of the
         public NIC is ACCEPTed in nat, which ends nat's POSTROUTING: no source NAT for
         the tunnel's traffic (the incumbent's 0x525 mark did the same in two tables).
  filter FORWARD -> vr-s2s-fwd, jumped before vr-FORWARD: VPC <-> peer CIDR traffic
         that is not IPsec (`-m policy --pol none`) is dropped: never out in the clear,
         never in spoofed. What IPsec carries goes on to vr-FORWARD: a tier's traffic to
         the peer leaves by the public NIC after the tier's egress ACL, the peer's
         traffic to a tier passes that tier's ACL_INBOUND chain like any other.
"""

from __future__ import annotations

from vragent.model import RouterState, SiteToSiteVpn

INPUT_CHAIN = "vr-s2s"
NONAT_CHAIN = "vr-s2s-nonat"
FORWARD_CHAIN = "vr-s2s-fwd"
IKE_PORTS = (500, 4500)
VERSIONS = {"ike": 0, "ikev1": 1, "ikev2": 2}  # swanctl.conf `version`: 0 is either


def enabled(state: RouterState) -> bool:
    return bool(state.site_to_site_vpns) and state.is_vpc


def device_of(state: RouterState, vpn: SiteToSiteVpn) -> str:
    return next((p.device for p in state.ordered_public_ips() if p.ip == vpn.local_ip), "eth1")


def connection(vpn: SiteToSiteVpn) -> dict:
    """What swanctl.conf.j2 needs of one peer."""
    from vragent.subsystems.vpn.site2sitevpn import proposals

    if vpn.split and len(vpn.peer_cidrs) > 1:
        children = [{"name": f"{vpn.name}-{index}", "remote_ts": [str(cidr)]}
                    for index, cidr in enumerate(vpn.peer_cidrs)]
    else:
        children = [{"name": vpn.name, "remote_ts": [str(c) for c in vpn.peer_cidrs]}]
    return {"name": vpn.name, "version": VERSIONS[vpn.ike_version], "local_ip": str(vpn.local_ip),
            "peer": str(vpn.peer), "local_cidr": str(vpn.local_cidr), "children": children,
            "ike_proposals": proposals(vpn.ike_policy), "esp_proposals": proposals(vpn.esp_policy),
            "ike_lifetime": vpn.ike_lifetime, "esp_lifetime": vpn.esp_lifetime,
            "encap": "yes" if vpn.encap else "no", "dpd": vpn.dpd,
            "start_action": "none" if vpn.passive else "trap", "preshared_key": vpn.preshared_key}


def connections(state: RouterState) -> list[dict]:
    return [connection(v) for v in state.site_to_site_vpns] if enabled(state) else []


def input_rules(state: RouterState, table) -> None:
    """filter: IKE, NAT-T and ESP from each peer gateway to its local public IP."""
    if not enabled(state):
        return
    from vragent.tables import host

    table.add("vr-INPUT", f"-j {INPUT_CHAIN}")
    for vpn in state.site_to_site_vpns:
        where = f"-s {host(vpn.peer)} -d {host(vpn.local_ip)} -i {device_of(state, vpn)}"
        for port in IKE_PORTS:
            table.add(INPUT_CHAIN, f"{where} -p udp -m udp --dport {port} -j ACCEPT")
        table.add(INPUT_CHAIN, f"{where} -p esp -j ACCEPT")


def forward_rules(state: RouterState, table) -> None:
    """filter: traffic between the VPC and a peer's networks only through IPsec.

    Jumped from FORWARD before vr-FORWARD. Outbound, a trapped CHILD_SA holds such
    packets until the SA is up; but a passive connection has no policy before the peer
    connects, and nothing else would stop the VPC's traffic to the peer from leaving in
    the clear. Inbound, a packet from a peer network that did not come out of ESP is a
    spoof: tier ACLs that trust the peer's CIDRs must never see it."""
    if not enabled(state):
        return
    from vragent.tables import net

    table.jump("FORWARD", f"-j {FORWARD_CHAIN}")
    for vpn in state.site_to_site_vpns:
        for cidr in vpn.peer_cidrs:
            table.add(FORWARD_CHAIN, f"-s {net(vpn.local_cidr)} -d {net(cidr)} -m policy --dir out --pol none -j DROP")
            table.add(FORWARD_CHAIN, f"-s {net(cidr)} -d {net(vpn.local_cidr)} -m policy --dir in --pol none -j DROP")


def nat_bypass(state: RouterState, table) -> None:
    """nat: the VPC's traffic to the peers' CIDRs keeps its source (jumped before vr-snat)."""
    if not enabled(state):
        return
    from vragent.tables import net

    table.jump("POSTROUTING", f"-j {NONAT_CHAIN}")
    for vpn in state.site_to_site_vpns:
        for cidr in vpn.peer_cidrs:
            table.add(NONAT_CHAIN, f"-s {net(vpn.local_cidr)} -d {net(cidr)} -o {device_of(state, vpn)} -j ACCEPT")
