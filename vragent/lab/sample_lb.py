"""Sample `loadbalancer` pushes and native load balancers for the lab network.

The configuration lines follow what the management server's HAProxyConfigurator (4.22,
core/.../network/HAProxyConfigurator.java) emits: its fixed global and defaults sections
(with `daemon`, a chroot, user/group and a stats socket vragent must reconcile), sections
separated by a line holding a tab and a space, one `listen <ip_with_underscores>-<port>`
per public IP:port (getRulesForPool: bind, then `mode http`/`option httpclose` for port
80 or SSL, then `balance`, then `server <pool>_<n> <vm ip>:<port> check`), a stats
`listen` sent as ONE element with embedded newlines, and the dummy `listen vmops` when
nothing is balanced. An SSL-offloading rule (lb protocol `ssl` with a certificate) binds
`ssl crt /etc/cloudstack/ssl/<pool>.pem` with HTTP/2 ALPN and the intermediate TLS
settings, and its certificate comes as `ssl_certs` named after the pool.
add_rules are "<ip>:<port>:", stat_rules "<ip>:<port>:<cidrs>:," (`[""]` without stats).
The payload's keys are LoadBalancerRule's, in its order; `ssl_certs` is always there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from vragent.lab.sample import _pushed
from vragent.lab.topology import CONTROL_ROUTER_IP, ROUTER_GUEST_IP

Payload = dict[str, Any]
BLANK = "\t "  # the management server's section separator


@dataclass(frozen=True)
class LbRule:
    """One load balancer rule: public_ip:public_port balanced over backends."""

    public_ip: str
    public_port: int
    backends: tuple[tuple[str, int], ...]
    algorithm: str = "roundrobin"
    http: bool | None = None  # None: http on port 80, like the management server
    extra: tuple[str, ...] = ()  # more lines for the listen section, e.g. "\ttimeout server 60000"
    ssl: bool = False  # SSL offloading: lb protocol "ssl" with a certificate

    @property
    def pool(self) -> str:
        return f"{self.public_ip.replace('.', '_')}-{self.public_port}"


def lb_rule(public_ip: str, public_port: int, backends: Iterable[tuple[str, int]], algorithm: str = "roundrobin",
            http: bool | None = None, extra: Iterable[str] = (), ssl: bool = False) -> LbRule:
    return LbRule(public_ip, public_port, tuple(backends), algorithm, http, tuple(extra), ssl)


# Where HAProxyConfigurator's bind lines name the certificates (SSL_CERTS_DIR), and the
# TLS settings it appends to an SSL-offloading bind and to each of its servers.
SSL_CERTS_DIR = "/etc/cloudstack/ssl/"
SSL_CONFIGURATION_INTERMEDIATE = (
    " ssl-min-ver TLSv1.2 no-tls-tickets ciphers ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256:"
    "DHE-RSA-AES256-GCM-SHA384:DHE-RSA-AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-GCM-SHA256 "
    "ciphersuites TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256")


@dataclass(frozen=True)
class Stats:
    ip: str = ROUTER_GUEST_IP
    port: int = 8081
    uri: str = "/admin?stats"
    auth: str = "admin1:AdMiN123"
    cidrs: str = "0/0"
    name: str = "stats_on_guest"


def global_section(maxconn: int = 4096) -> list[str]:
    return ["global", "\tlog 127.0.0.1:3914   local0 warning", f"\tmaxconn {maxconn}", f"\tmaxpipes {maxconn // 4}",
            "\tchroot /var/lib/haproxy", "\tuser haproxy", "\tgroup haproxy",
            "\tstats socket /run/haproxy/admin.sock", "\tdaemon"]


def defaults_section(timeout_server: int = 50000) -> list[str]:
    return ["defaults", "\tlog     global", "\tmode    tcp", "\toption  dontlognull", "\tretries 3",
            "\toption redispatch", "\toption forwardfor", "\toption httpclose", "\ttimeout connect    5000",
            "\ttimeout client     50000", f"\ttimeout server     {timeout_server}"]


def stats_element(stats: Stats) -> str:
    # One element with embedded newlines, exactly as generateStatsRule() builds it.
    return (f"\nlisten {stats.name}\n\tbind {stats.ip}:{stats.port}\n\tmode http\n\toption httpclose"
            f"\n\tstats enable\n\tstats uri     {stats.uri}\n\tstats realm   Haproxy\\ Statistics"
            f"\n\tstats auth    {stats.auth}\n")


def pool_lines(rule: LbRule) -> list[str]:
    """getRulesForPool: the frontend lines, then the backend lines, then a blank line."""
    bind = f"\tbind {rule.public_ip}:{rule.public_port}"
    if rule.ssl:  # one element, its second line embedded
        bind += (f" ssl crt {SSL_CERTS_DIR}{rule.pool}.pem alpn h2,http/1.1{SSL_CONFIGURATION_INTERMEDIATE}"
                 "\n\thttp-request add-header X-Forwarded-Proto https")
    lines = [f"listen {rule.pool}", bind]
    if rule.http or (rule.http is None and rule.public_port == 80) or rule.ssl:
        lines += ["\tmode http", "\toption httpclose"]
    lines += [f"\tbalance {rule.algorithm}"]
    lines += list(rule.extra)
    server_ssl = SSL_CONFIGURATION_INTERMEDIATE if rule.ssl else ""
    lines += [f"\tserver {rule.pool}_{n} {ip}:{port} check{server_ssl}" for n, (ip, port) in enumerate(rule.backends)]
    return lines + [BLANK]


def configuration(rules: Iterable[LbRule], stats: Stats | None = None, maxconn: int = 4096,
                  timeout_server: int = 50000) -> list[str]:
    rules = list(rules)
    lines = global_section(maxconn) + [BLANK] + defaults_section(timeout_server)
    if stats is not None:
        lines.append(stats_element(stats))
    lines.append(BLANK)
    for rule in rules:
        lines += pool_lines(rule)
    lines.append(BLANK)
    if not rules:
        lines += ["listen  vmops", "\tbind 0.0.0.0:9", "\toption transparent"]
    return lines


def loadbalancer(*rules: LbRule, stats: Stats | None = None, revoked: Iterable[LbRule] = (),
                 ssl_certs: Iterable[Payload] = (), lines: list[str] | None = None, maxconn: int = 4096,
                 timeout_server: int = 50000) -> Payload:
    """load_balancer.json: the whole configuration plus the INPUT rules it needs."""
    rule: Payload = {
        "configuration": lines if lines is not None else configuration(rules, stats, maxconn, timeout_server),
        "tmp_cfg_file_path": "/etc/haproxy/",
        "tmp_cfg_file_name": "haproxy.cfg.new.1714640000000",
        "ssl_certs": list(ssl_certs),  # generateSslCertEntries: an empty array, never null
        "add_rules": [f"{r.public_ip}:{r.public_port}:" for r in rules],
        "remove_rules": [f"{r.public_ip}:{r.public_port}:" for r in revoked],
        # generateFwRules adds an empty entry when stats are disabled
        "stat_rules": [f"{stats.ip}:{stats.port}:{stats.cidrs}:,"] if stats is not None else [""],
        "router_ip": CONTROL_ROUTER_IP,  # an isolated router's ROUTER_IP access detail (a VPC's: its NIC IP)
    }
    return _pushed("loadbalancer", rules=[rule])


def ssl_cert(name: str, cert: str, key: str, chain: str | None = None) -> Payload:
    """An SslCertEntry: named after its rule's pool (`<ip_with_underscores>-<port>`); Gson
    leaves out a null chain and a null password."""
    entry = {"name": name, "cert": cert, "key": key}
    if chain is not None:
        entry["chain"] = chain
    return entry


# --- native document load balancers ---

def balancer(ip: str, port: int, backends: Iterable[tuple[str, int]], name: str | None = None,
             protocol: str = "tcp", algorithm: str = "roundrobin", **options: Any) -> Payload:
    """One entry of load_balancing.balancers in the native document."""
    entry: Payload = {"ip": ip, "port": port, "protocol": protocol, "algorithm": algorithm,
                      "backends": [{"ip": b_ip, "port": b_port} for b_ip, b_port in backends]}
    if name is not None:
        entry["name"] = name
    entry.update(options)
    return entry


@dataclass
class NativeLb:
    """load_balancing for a native document: balancers, an optional stats page, maxconn."""

    balancers: list[Payload] = field(default_factory=list)
    stats: Payload | None = None
    maxconn: int | None = None

    def section(self) -> Payload:
        section: Payload = {"balancers": self.balancers}
        if self.stats is not None:
            section["stats"] = self.stats
        if self.maxconn is not None:
            section["maxconn"] = self.maxconn
        return section


def with_load_balancing(document: Payload, native: NativeLb | None) -> Payload:
    """A copy of a native document (`vragent show`) with its load_balancing replaced."""
    updated = {key: value for key, value in document.items() if key != "load_balancing"}
    if native is not None:
        updated["load_balancing"] = native.section()
    return updated
