"""Remote-access VPN (L2TP/IPsec): strongSwan, xl2tpd and pppd's files and daemons.

strongSwan is shared with the site-to-site VPNs (subsystems/vpn/site2site.py): one charon, one
strongswan.conf, one swanctl.conf holding both kinds of connections.

- strongSwan: `charon-systemd` with vragent's own strongswan.conf (its plugins, its vici
  socket under the run directory) and one swanctl.conf: IKEv1 main mode, PSK, ESP
  transport mode for udp 1701 on the VPN's public IP. swanctl, not the ipsec starter:
  one file loaded over vici with `swanctl --load-all` (a change is a reload, never a
  restart of charon, so other clients keep their SAs), and charon-systemd runs the same
  way under systemd and in the lab (no starter pidfile and stroke socket in /var/run
  shared by every namespace). subsystems/vpn/service.py loads the file after each action.
- xl2tpd: listens on the public IP, gives clients addresses from `ip_range`, its own end
  `local_ip`; pppd (options.xl2tpd) requires CHAP or MS-CHAPv2 and tells clients the
  router's guest address as DNS (dnsmasq answers there). A change of either file
  restarts xl2tpd (it has no reload); pppd's options are checked with `pppd dryrun`.
- chap-secrets (/etc/ppp/chap-secrets, mode 0600): one `"user" * "password" *` line per
  user. pppd reads it for every new connection, so a user added or removed costs no
  action at all; a removed user's (or changed password's) running session is ended
  (VpnSessionStep). Under the relocatable root it is <root>/etc/ppp/chap-secrets.

`create: false` (no VPN in the state) stops both daemons and removes their files; the
firewall openings are rendered from the same state (pipeline/netfilter.py).
"""

from __future__ import annotations

from pathlib import Path

from vragent import templating
from vragent.model import GUEST_DEVICE, ISOLATED_ROUTER, RouterState, VpnUser
from vragent.paths import Paths

# Proposals road-warrior L2TP clients offer (Windows, macOS/iOS, Android): AES with SHA1
# or SHA2 and MODP 1024..2048 for IKEv1; the plugins below provide all of them.
IKE_PROPOSALS = ("aes256-sha256-modp2048", "aes128-sha256-modp2048", "aes256-sha1-modp2048",
                 "aes128-sha1-modp2048", "aes256-sha1-modp1024", "aes128-sha1-modp1024", "default")
ESP_PROPOSALS = ("aes256-sha256", "aes128-sha256", "aes256-sha1", "aes128-sha1", "default")
PLUGINS = ("random", "nonce", "aes", "sha1", "sha2", "md5", "hmac", "gmp", "kdf", "pem", "pkcs1", "pubkey", "x509",
           "kernel-netlink", "socket-default", "vici")
SWANCTL_PLUGINS = ("random", "nonce", "aes", "sha1", "sha2", "pem", "pkcs1", "pubkey", "x509")
PPP_NAME = "vragent-l2tp"
STRONGSWAN_NAME, XL2TPD_NAME = "strongswan", "xl2tpd"  # their services (service.py)
# pppd's session database (pppd(8), FILES): the environment of each running pppd.
PPPD_DB = "run/pppd2.tdb"


class VpnPaths:
    def __init__(self, paths: Paths):
        base = paths.under("etc/vragent")
        self.strongswan_conf = base / "strongswan" / "strongswan.conf"
        self.swanctl_conf = base / "strongswan" / "swanctl.conf"
        self.xl2tpd_conf = base / "xl2tpd" / "xl2tpd.conf"
        self.ppp_options = base / "ppp" / "options.xl2tpd"
        self.chap_secrets = paths.under("etc/ppp/chap-secrets")  # pppd's own, fixed path
        self.vici = paths.run_dir / "charon.vici"
        self.charon_pid = paths.run_dir / "charon.pid"
        self.xl2tpd_pid = paths.run_dir / "xl2tpd.pid"
        self.xl2tpd_control = paths.run_dir / "xl2tpd-control"
        self.charon_log = paths.under("var/log/vragent-charon.log")
        self.pppd_db = paths.under(PPPD_DB)


def enabled(state: RouterState) -> bool:
    return state.remote_access_vpn is not None and state.router_type in (None, ISOLATED_ROUTER)


def dns_server(state: RouterState) -> str:
    """What clients get as DNS: the router's guest address (dnsmasq), else the VPN's own end."""
    guests = state.all_guest_networks()
    vpn = state.remote_access_vpn
    if vpn.local_cidr is not None:
        for network in guests:
            if network.network.overlaps(vpn.local_cidr):
                return str(network.router_ip)
    for network in guests:
        if network.device == GUEST_DEVICE:
            return str(network.router_ip)
    return str(guests[0].router_ip) if guests else str(vpn.local_ip)


def strongswan_conf(paths: Paths) -> str:
    files = VpnPaths(paths)
    # A VR's charon-systemd logs to the journal; the lab (a relocated root) has none.
    log_file = str(files.charon_log) if paths.root != Path("/") else ""
    return templating.render("strongswan.conf.j2", plugins=list(PLUGINS), swanctl_plugins=list(SWANCTL_PLUGINS),
                             vici_socket=str(files.vici), log_file=log_file)


def charon_enabled(state: RouterState) -> bool:
    """charon runs for the remote-access VPN, the site-to-site VPNs, or both."""
    from vragent.subsystems.vpn import site2site

    return enabled(state) or site2site.enabled(state)


def swanctl_conf(state: RouterState) -> str:
    """One file with every connection charon serves: the remote-access VPN's and one per
    site-to-site peer (subsystems/vpn/site2site.py)."""
    from vragent.subsystems.vpn import site2site

    ra = None
    if enabled(state):
        vpn = state.remote_access_vpn
        ra = {"public_ip": str(vpn.public_ip), "ike_proposals": list(IKE_PROPOSALS),
              "esp_proposals": list(ESP_PROPOSALS), "preshared_key": vpn.preshared_key}
    return templating.render("swanctl.conf.j2", ra=ra, s2s=site2site.connections(state))


def xl2tpd_conf(state: RouterState, paths: Paths) -> str:
    vpn = state.remote_access_vpn
    return templating.render("xl2tpd.conf.j2", public_ip=str(vpn.public_ip), ip_range=vpn.ip_range,
                             local_ip=str(vpn.local_ip), ppp_name=PPP_NAME, ppp_options=str(VpnPaths(paths).ppp_options))


def ppp_options(state: RouterState) -> str:
    return templating.render("options.xl2tpd.j2", dns=dns_server(state))


def chap_secrets(users: tuple[VpnUser, ...]) -> str:
    lines = [f"# {templating.GENERATED_HEADER}",
             "# Remote-access VPN users: client, server, secret, addresses (pppd(8), chap-secrets)."]
    lines += [f'"{u.name}" * "{u.password}" *' for u in users]
    return "\n".join(lines) + "\n"


def strongswan_daemon(state: RouterState, paths: Paths):
    from vragent.desired import DaemonDesired

    on = charon_enabled(state)
    files = VpnPaths(paths)
    return DaemonDesired(
        service=STRONGSWAN_NAME,
        enabled=on,
        files={files.strongswan_conf: (strongswan_conf(paths) if on else None, 0o644),
               files.swanctl_conf: (swanctl_conf(state) if on else None, 0o600)},
        restart_files=frozenset({files.strongswan_conf}),
    )


def xl2tpd_daemon(state: RouterState, paths: Paths):
    from vragent.desired import DaemonDesired

    on = enabled(state)
    files = VpnPaths(paths)

    def checker(candidates: dict[Path, Path]):
        # dryrun: pppd parses every option and exits before opening a link (pppd(8)).
        # Exit 4 is "the kernel does not support PPP": the options were valid; a kernel
        # without PPP (the lab's) can still check them.
        options = candidates.get(files.ppp_options, files.ppp_options)
        return ["pppd", "file", str(options), "notty", "dryrun"], (0, 4)

    return DaemonDesired(
        service=XL2TPD_NAME,
        enabled=on,
        files={files.xl2tpd_conf: (xl2tpd_conf(state, paths) if on else None, 0o644),
               files.ppp_options: (ppp_options(state) if on else None, 0o644),
               files.chap_secrets: (chap_secrets(state.vpn_users) if on else None, 0o600)},
        restart_files=frozenset({files.xl2tpd_conf, files.ppp_options}),
        checker=checker,
        # chap-secrets alone: pppd reads it for each new connection; nothing to signal.
        reload_action="none",
    )


def session_steps(old: RouterState, new: RouterState, paths: Paths) -> list:
    """End the running sessions of users that are gone or whose password changed."""
    if old.vpn_users == new.vpn_users or old.remote_access_vpn is None:
        return []
    kept = set(new.vpn_users) if enabled(new) else set()
    dropped = sorted({u.name for u in old.vpn_users if u not in kept})
    if not dropped:
        return []
    from vragent.steps import VpnSessionStep

    return [VpnSessionStep(VpnPaths(paths).pppd_db, tuple(dropped))]
