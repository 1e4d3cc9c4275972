"""Load balancing: CloudStack's HAProxy configuration and native balancers (pure)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network


class LbProtocol(enum.Enum):
    TCP = "tcp"
    HTTP = "http"


class LbAlgorithm(enum.Enum):
    ROUNDROBIN = "roundrobin"
    LEASTCONN = "leastconn"
    SOURCE = "source"


@dataclass(frozen=True)
class LbAccept:
    """An INPUT accept for a listener HAProxy serves on the router itself (TCP)."""

    ip: IPv4Address | None  # None: any local address (CloudStack's stats visibility "all")
    port: int
    sources: tuple[IPv4Network, ...] = ()  # empty: from anywhere


@dataclass(frozen=True)
class SslCert:
    """A certificate HAProxy serves (CloudStack `ssl_certs`), stored as <name>.pem."""

    name: str
    cert: str
    key: str
    chain: str = ""

    def pem(self) -> str:
        """Certificate, chain, key: the order HAProxy and the incumbent use; CRLF normalised."""
        parts = [self.cert, self.chain, self.key]
        return "".join(part.replace("\r\n", "\n").rstrip("\n") + "\n" for part in parts if part.strip())


@dataclass(frozen=True)
class CloudStackLb:
    """The management server's whole HAProxy configuration (`loadbalancer` push)."""

    configuration: tuple[str, ...]  # one element per line, as sent (embedded newlines split)
    listeners: tuple[LbAccept, ...] = ()  # add_rules: one per live load balancer rule
    stats: tuple[LbAccept, ...] = ()  # stat_rules
    ssl_certs: tuple[SslCert, ...] = ()


@dataclass(frozen=True)
class LbBackend:
    ip: IPv4Address
    port: int

    @property
    def server_name(self) -> str:
        # Named by address, not position, so server state survives removing another backend.
        return f"srv_{str(self.ip).replace('.', '_')}_{self.port}"


@dataclass(frozen=True)
class LbHealthCheck:
    interval_ms: int = 2000
    rise: int = 2
    fall: int = 3
    http_path: str | None = None  # http listeners: GET this path; otherwise a TCP connect check


@dataclass(frozen=True)
class LbStickiness:
    method: str  # "source" (stick table on the client address) | "cookie" (http only)
    cookie: str = "SERVERID"
    table_size: int = 200000
    expire_s: int = 1800


@dataclass(frozen=True)
class LbTimeouts:
    connect_ms: int = 5000
    client_ms: int = 50000
    server_ms: int = 50000


@dataclass(frozen=True)
class LoadBalancer:
    """One listener of the native document and the backends it balances across."""

    name: str
    ip: IPv4Address
    port: int
    protocol: LbProtocol = LbProtocol.TCP
    algorithm: LbAlgorithm = LbAlgorithm.ROUNDROBIN
    backends: tuple[LbBackend, ...] = ()
    health_check: LbHealthCheck | None = None
    stickiness: LbStickiness | None = None
    timeouts: LbTimeouts = LbTimeouts()
    maxconn: int | None = None


@dataclass(frozen=True)
class LbStats:
    """HAProxy's statistics page, only where a document asks for it."""

    ip: IPv4Address
    port: int
    uri: str = "/admin?stats"
    auth: str | None = None  # "user:password"
    sources: tuple[IPv4Network, ...] = ()
    public: bool = False  # must be set to serve it on a public IP


@dataclass(frozen=True)
class LoadBalancing:
    """Either the management server's configuration or native load balancers, never both."""

    cloudstack: CloudStackLb | None = None
    balancers: tuple[LoadBalancer, ...] = ()
    stats: LbStats | None = None
    maxconn: int = 4096

    @property
    def active(self) -> bool:
        """HAProxy runs while at least one load balancer exists."""
        if self.cloudstack is not None:
            return bool(self.cloudstack.listeners)
        return bool(self.balancers)

    def accepts(self) -> tuple[LbAccept, ...]:
        """The INPUT accepts HAProxy's listeners need; none while HAProxy does not run."""
        if not self.active:
            return ()
        if self.cloudstack is not None:
            found = list(self.cloudstack.listeners) + list(self.cloudstack.stats)
        else:
            found = [LbAccept(lb.ip, lb.port) for lb in self.balancers]
            if self.stats is not None:
                found.append(LbAccept(self.stats.ip, self.stats.port, self.stats.sources))
        return tuple(dict.fromkeys(found))
