"""DHCP and DNS for guest VMs (dnsmasq).

dnsmasq.conf holds only what needs a restart; hosts, options and names live in files
dnsmasq re-reads on SIGHUP (dhcp-hostsfile, dhcp-optsfile, addn-hosts). So a VM
coming or going costs one signal, never a restart.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vragent import templating
from vragent.errors import ValidationError
from vragent.model import RouterState
from vragent.paths import Paths
from vragent.desired import DaemonDesired

LEASE_MAX = 10000
# Settings vragent owns: a native document's extra options may not override them.
_OWNED_OPTIONS = ("interface", "except-interface", "listen-address", "bind-", "port", "conf-file", "conf-dir",
                  "addn-hosts", "dhcp-hostsfile", "dhcp-optsfile", "dhcp-leasefile", "pid-file", "user",
                  "group", "resolv-file", "log-facility", "no-hosts")


@dataclass(frozen=True)
class DnsmasqPaths:
    conf: Path
    hosts: Path
    dhcphosts: Path
    dhcpopts: Path
    resolv: Path
    leases: Path
    log: Path
    pid: Path

    @classmethod
    def of(cls, paths: Paths) -> "DnsmasqPaths":
        base = paths.under("etc/vragent/dnsmasq")
        return cls(base / "dnsmasq.conf", base / "hosts", base / "dhcphosts", base / "dhcpopts",
                   base / "resolv.conf", paths.under("var/lib/misc/dnsmasq.leases"),
                   paths.under("var/log/dnsmasq.log"), paths.run_dir / "dnsmasq.pid")


SERVICE_NAME = "dnsmasq"


def _tag(ip) -> str:
    return "vm_" + str(ip).replace(".", "_")


def _dns_servers(state: RouterState, subnet) -> list[str]:
    if state.config.get("useextdns", "false").lower() == "true" and subnet.dns:
        return [str(d) for d in subnet.dns]
    # The router answers DNS itself: on its gateway address where it is the gateway (a
    # pair's VIP), else (a shared network's dhcpsrvr) on its own address in that subnet.
    return [str(subnet.address if state.is_dhcp_server else subnet.gateway)]


def render_files(state: RouterState, paths: Paths) -> dict[Path, str]:
    files = DnsmasqPaths.of(paths)
    # One range per subnet: each guest network, and each IP alias's subnet of a shared
    # network (every alias, VMs or not, so a subnet's first VM costs a SIGHUP, not a restart).
    subnets = state.guest_subnets()
    domain_default = state.config.get("domain") or "cloudnine.internal"
    header = f"# {templating.GENERATED_HEADER}\n"

    options = []
    for subnet in subnets:
        # A VM's lease comes from the range its address is in, which sets that range's tag.
        tag = f"tag:{subnet.tag}"
        if subnet.gateway is not None:
            options.append(f"{tag},option:router,{subnet.gateway}")
        options.append(f"{tag},option:dns-server,{','.join(_dns_servers(state, subnet))}")
        options.append(f"{tag},option:domain-name,{subnet.domain or domain_default}")
        if subnet.mtu:
            options.append(f"{tag},option:mtu,{subnet.mtu}")
    hosts_lines, dhcp_lines, tagged_hosts = [], [], []
    for host in state.dhcp_hosts:
        if host.default_entry:
            dhcp_lines.append(f"{host.mac},{host.ip},{host.hostname},infinite")
        else:
            # A VM's secondary NIC: no default route, DNS or domain through this network.
            # Its tag is set in dnsmasq.conf, not the hosts file: dnsmasq 2.90 (Debian 12)
            # crashes on SIGHUP once a VM whose dhcp-hostsfile line sets a tag holds a lease
            # (seen in the lab), so such a VM coming or going costs a restart instead.
            tag = _tag(host.ip)
            tagged_hosts.append(f"{host.mac},set:{tag},{host.ip},{host.hostname},infinite")
            options += [f"tag:{tag},option:router", f"tag:{tag},option:dns-server",
                        f"tag:{tag},option:domain-name"]
        hosts_lines.append(f"{host.ip} {host.hostname}")
    conf = templating.render(
        "dnsmasq.conf.j2", memo=True,
        paths={k: str(v) for k, v in vars(files).items()}, run_as_root=paths.root != Path("/"), lease_max=LEASE_MAX,
        extra_options=list(state.dnsmasq_options), tagged_hosts=tagged_hosts,
        vpn_clients=state.remote_access_vpn is not None,
        devices=list(dict.fromkeys(s.device for s in subnets)),
        localise=len(subnets) > 1,  # VPC tiers, IP aliases: data-server answered per subnet
        networks=[{"tag": s.tag, "domain": s.domain or domain_default, "cidr": str(s.network),
                   "start": str(s.network.network_address), "netmask": str(s.network.netmask)}
                  for s in subnets])

    router_name = state.config.get("name")
    for subnet in subnets:
        names = " ".join(n for n in (router_name, "data-server") if n)
        # The guests' data server: the gateway where the router is it, else its own address.
        hosts_lines.insert(0, f"{subnet.address if state.is_dhcp_server else subnet.gateway} {names}")

    upstream = [state.config.get(k) for k in ("dns1", "dns2")]
    resolv = "".join(f"nameserver {server}\n" for server in upstream if server)
    return {
        files.conf: conf,
        files.dhcphosts: header + "".join(line + "\n" for line in dhcp_lines),
        files.dhcpopts: header + "".join(line + "\n" for line in options),
        files.hosts: header + "".join(line + "\n" for line in hosts_lines),
        files.resolv: header + resolv,
    }


def seed_leases(state: RouterState) -> str:
    """Leases known before dnsmasq first starts (a recreated VR ACKs renewals at once)."""
    return "".join(f"0 {h.mac} {h.ip} {h.hostname} *\n" for h in state.dhcp_hosts)


def daemon(state: RouterState, paths: Paths) -> DaemonDesired:
    files = DnsmasqPaths.of(paths)
    enabled = state.serves_guests
    rendered = render_files(state, paths) if enabled else {}
    wanted = {path: (rendered.get(path), 0o644) for path in
              (files.conf, files.dhcphosts, files.dhcpopts, files.hosts, files.resolv)}
    return DaemonDesired(
        service=SERVICE_NAME,
        enabled=enabled,
        files=wanted,
        restart_files=frozenset({files.conf}),
        checker=lambda candidates: ["dnsmasq", "--test", f"--conf-file={candidates.get(files.conf, files.conf)}"],
        seed_files={files.leases: (seed_leases(state), 0o644)} if enabled else {},
    )


def check_options(options, path: str) -> list[ValidationError]:
    errors = []
    if not isinstance(options, list):
        return [ValidationError(path, "expected a list of dnsmasq.conf lines")]
    for index, option in enumerate(options):
        where = f"{path}[{index}]"
        if not isinstance(option, str) or not option.strip():
            errors.append(ValidationError(where, "expected a non-empty dnsmasq.conf line"))
        elif any(c in option for c in "\n\r\0"):
            errors.append(ValidationError(where, "must be a single line"))
        elif option.split("=", 1)[0].strip().startswith(_OWNED_OPTIONS):
            errors.append(ValidationError(where, f"{option.split('=', 1)[0]!r} is managed by vragent"))
    return errors


def release_steps(old: RouterState, new: RouterState) -> list:
    """Leases of VMs that are gone (or moved to another IP) are released at once, so the
    IP can go to a new MAC on its first DISCOVER (dnsmasq would otherwise refuse it)."""
    from vragent.steps import DhcpReleaseStep

    kept = {(h.mac, h.ip) for h in new.dhcp_hosts}
    subnets = old.guest_subnets()
    steps = []
    for host in old.dhcp_hosts:
        if (host.mac, host.ip) in kept:
            continue
        device = next((s.device for s in subnets if host.ip in s.network), None)
        if device is not None:
            steps.append(DhcpReleaseStep(device, host.ip, host.mac))
    return steps
