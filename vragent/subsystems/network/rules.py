"""The network subsystem's rules: the base of vr-INPUT (loopback, established, ICMP, the
management SSH) and the connection marks of policy routing (routing.py) (pure)."""

from __future__ import annotations

from vragent.model import GUEST_DEVICE, SSH_PORT, RouterState
from vragent.subsystems.network import routing
from vragent.tables import ESTABLISHED, TableSpec, host, join, mark_of


def input_base(state: RouterState, table: TableSpec) -> None:
    """vr-INPUT (policy DROP) up to the services: lo, established, ICMP, SSH on the control NIC."""
    table.policies["INPUT"] = "DROP"
    table.jump("INPUT", "-j vr-INPUT")
    chain = "vr-INPUT"
    table.add(chain, "-i lo -j ACCEPT")
    table.add(chain, f"{ESTABLISHED} -j ACCEPT")
    table.add(chain, "-p icmp -j ACCEPT")
    # Management SSH only from the control NIC (the management server's link-local path).
    table.add(chain, f"-i {state.layout.control} -p tcp -m tcp --dport {SSH_PORT} -j ACCEPT")
    if state.is_dhcp_server and state.config.get("sshonguest") == "true":
        # A basic zone on VMware or Hyper-V: the management server reaches the VR over
        # the guest network (it says so with sshonguest=true).
        table.add(chain, f"-i {GUEST_DEVICE} -p tcp -m tcp --dport {SSH_PORT} -j ACCEPT")


def marks(state: RouterState, table: TableSpec) -> None:
    """Marks that route a connection's packets by its public NIC's table (subsystems/network/routing.py).

    Jumped after vr-PREROUTING: the ingress firewall only RETURNs or DROPs, so the order
    changes no verdict, and a packet it drops is never marked. Both run before nat's DNAT
    and before the routing decision, which is all the marks need.
    - a new connection arriving on public NIC ethN: connmark 0x(100+N);
    - a packet from a guest in an established connection: the connmark restored into its
      mark, so the reply leaves by the NIC the connection came in on;
    - a static-NAT VM's new connection: marked for its public IP's NIC, connmark saved.
    """
    devices = routing.render(state).devices
    if not devices:
        return
    table.jump("PREROUTING", "-j vr-mark")
    chain = "vr-mark"
    guests = state.all_guest_networks()
    for guest in guests:
        table.add(chain, f"-i {guest.device} {ESTABLISHED} -j CONNMARK --restore-mark "
                         "--nfmask 0xffffffff --ctmask 0xffffffff")
    public = {p.ip: p.device for p in state.ordered_public_ips()}
    for nat in state.static_nats:
        device = public.get(nat.public_ip)
        if device not in devices:
            continue
        inside = next((g.device for g in guests if nat.internal_ip in g.network), None)
        table.add(chain, join(f"-s {host(nat.internal_ip)}", f"-i {inside}" if inside else "",
                               f"-m conntrack --ctstate NEW -j vr-mark-{device}"))
        static = f"vr-mark-{device}"
        if static not in table.chains:
            table.add(static, f"-j MARK --set-xmark {mark_of(device):#x}/0xffffffff")
            table.add(static, "-j CONNMARK --save-mark --nfmask 0xffffffff --ctmask 0xffffffff")
    for device in devices:
        table.add(chain, f"-i {device} -m conntrack --ctstate NEW -j CONNMARK "
                         f"--set-xmark {mark_of(device):#x}/0xffffffff")
