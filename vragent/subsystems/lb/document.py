"""The `load_balancing` section of the state document (schema: schema/state.schema.json).

It holds either the management server's HAProxy configuration (`cloudstack`, from a
`loadbalancer` push) or native load balancers (`balancers`, optional `stats`, global
`maxconn`) rendered from templates/haproxy.cfg.j2, never both. The section is left out
of the document while it is empty, so routers without load balancing keep the
document they always had.
"""

from __future__ import annotations

import re
from ipaddress import IPv4Address, IPv4Network

from vragent.errors import ValidationError
from vragent.model import (CloudStackLb, LbAccept, LbAlgorithm, LbBackend, LbHealthCheck, LbProtocol, LbStats,
                           LbStickiness, LbTimeouts, LoadBalancer, LoadBalancing, SslCert)
from vragent.fields import Fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

KEY = "load_balancing"
NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,63}$")
# A path or URI HAProxy takes as one word: printable, no spaces, no quotes or backslashes.
URI = re.compile(r"^/[!#-\[\]-~]*$")
AUTH = re.compile(r"^[!#-\[\]-~]+:[!#-\[\]-~]+$")
COOKIE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STICKINESS_METHODS = ("source", "cookie")
EMPTY = LoadBalancing()


# -- writing ---------------------------------------------------------------------------

def _accept(a: LbAccept) -> dict[str, Any]:
    return {"ip": str(a.ip) if a.ip else None, "port": a.port, "source_cidrs": [str(s) for s in a.sources]}


def to_document(lb: LoadBalancing) -> dict[str, Any]:
    doc: dict[str, Any] = {}
    if lb.cloudstack is not None:
        cs = lb.cloudstack
        doc["cloudstack"] = {
            "configuration": list(cs.configuration),
            "listeners": [_accept(a) for a in cs.listeners],
            "stats": [_accept(a) for a in cs.stats],
            "ssl_certs": [{"name": c.name, "cert": c.cert, "key": c.key, "chain": c.chain} for c in cs.ssl_certs],
        }
    if lb.balancers:
        doc["balancers"] = [_balancer(b) for b in lb.balancers]
    if lb.stats is not None:
        s = lb.stats
        doc["stats"] = {"ip": str(s.ip), "port": s.port, "uri": s.uri, "auth": s.auth,
                        "source_cidrs": [str(c) for c in s.sources], "public": s.public}
    if lb.maxconn != EMPTY.maxconn:
        doc["maxconn"] = lb.maxconn
    return doc


def _balancer(b: LoadBalancer) -> dict[str, Any]:
    check = b.health_check
    sticky = b.stickiness
    return {
        "name": b.name, "ip": str(b.ip), "port": b.port, "protocol": b.protocol.value,
        "algorithm": b.algorithm.value,
        "backends": [{"ip": str(s.ip), "port": s.port} for s in b.backends],
        "health_check": None if check is None else {"interval_ms": check.interval_ms, "rise": check.rise,
                                                    "fall": check.fall, "http_path": check.http_path},
        "stickiness": None if sticky is None else {"method": sticky.method, "cookie": sticky.cookie,
                                                   "table_size": sticky.table_size, "expire_s": sticky.expire_s},
        "timeouts": {"connect_ms": b.timeouts.connect_ms, "client_ms": b.timeouts.client_ms,
                     "server_ms": b.timeouts.server_ms},
        "maxconn": b.maxconn,
    }


# -- reading what vragent wrote itself ------------------------------------------------

def _trusted_accept(d: dict) -> LbAccept:
    return LbAccept(IPv4Address(d["ip"]) if d.get("ip") else None, d["port"],
                    tuple(IPv4Network(c) for c in d.get("source_cidrs", [])))


def load_trusted(data: dict | None) -> LoadBalancing:
    if not data:
        return EMPTY
    cloudstack = None
    if data.get("cloudstack") is not None:
        cs = data["cloudstack"]
        cloudstack = CloudStackLb(
            configuration=tuple(cs["configuration"]),
            listeners=tuple(_trusted_accept(a) for a in cs.get("listeners", [])),
            stats=tuple(_trusted_accept(a) for a in cs.get("stats", [])),
            ssl_certs=tuple(SslCert(c["name"], c["cert"], c["key"], c.get("chain", ""))
                            for c in cs.get("ssl_certs", [])),
        )
    balancers = []
    for b in data.get("balancers", []):
        check, sticky, timeouts = b.get("health_check"), b.get("stickiness"), b.get("timeouts") or {}
        balancers.append(LoadBalancer(
            b["name"], IPv4Address(b["ip"]), b["port"], LbProtocol(b["protocol"]), LbAlgorithm(b["algorithm"]),
            tuple(LbBackend(IPv4Address(s["ip"]), s["port"]) for s in b.get("backends", [])),
            None if check is None else LbHealthCheck(check["interval_ms"], check["rise"], check["fall"],
                                                     check.get("http_path")),
            None if sticky is None else LbStickiness(sticky["method"], sticky["cookie"], sticky["table_size"],
                                                     sticky["expire_s"]),
            LbTimeouts(**timeouts), b.get("maxconn")))
    stats = None
    if data.get("stats") is not None:
        s = data["stats"]
        stats = LbStats(IPv4Address(s["ip"]), s["port"], s["uri"], s.get("auth"),
                        tuple(IPv4Network(c) for c in s.get("source_cidrs", [])), s.get("public", False))
    return LoadBalancing(cloudstack, tuple(balancers), stats, data.get("maxconn", EMPTY.maxconn))


# -- reading a native document (validated, every error with its path) ----------------

def from_document(raw: Any, path: str, errors: list[ValidationError]) -> LoadBalancing:
    if raw is None:
        return EMPTY
    doc = Fields(raw, path, errors)
    cloudstack = _cloudstack(doc) if doc.has("cloudstack") else None
    balancers = []
    for index, item in enumerate(doc.list("balancers", []) or []):
        balancer = _native_balancer(Fields(item, f"{doc.at('balancers')}[{index}]", errors))
        if balancer is not None:
            balancers.append(balancer)
    stats = _stats(Fields(doc.raw("stats"), doc.at("stats"), errors)) if doc.has("stats") else None
    maxconn = doc.integer("maxconn", EMPTY.maxconn, lo=1, hi=1_000_000)
    if cloudstack is not None and (doc.has("balancers") or doc.has("stats")):
        doc.error("cloudstack", "a router runs either the management server's HAProxy configuration or native "
                                "load balancers (balancers, stats), not both")
    names: dict[str, int] = {}
    sockets: dict[tuple, str] = {}
    for index, balancer in enumerate(balancers):
        where = f"{doc.at('balancers')}[{index}]"
        if balancer.name in names:
            errors.append(ValidationError(f"{where}.name", f"{balancer.name!r} is also the name of "
                                                           f"balancers[{names[balancer.name]}]"))
        names.setdefault(balancer.name, index)
        socket = (balancer.ip, balancer.port)
        if socket in sockets:
            errors.append(ValidationError(where, f"{balancer.ip}:{balancer.port} is already served by "
                                                 f"{sockets[socket]}"))
        sockets.setdefault(socket, where)
    if stats is not None and (stats.ip, stats.port) in sockets:
        doc.error("stats", f"{stats.ip}:{stats.port} is already served by {sockets[(stats.ip, stats.port)]}")
    return LoadBalancing(cloudstack, tuple(balancers), stats, maxconn if maxconn is not None else EMPTY.maxconn)


def _port(item: Fields, key: str) -> int | None:
    return item.integer(key, lo=1, hi=65535)


def _sources(item: Fields, key: str = "source_cidrs") -> tuple[IPv4Network, ...]:
    sources = item.cidr_list(key)
    return () if any(s.prefixlen == 0 for s in sources) else sources


def _native_balancer(item: Fields) -> LoadBalancer | None:
    ip, port = item.ipv4("ip"), _port(item, "port")
    default_name = f"{str(ip).replace('.', '_')}-{port}" if ip and port else None
    name = item.string("name", default_name)
    if name is not None and not NAME.match(name):
        item.error("name", f"{name!r} is not a usable proxy name (letters, digits, '_', '.', ':', '-'; at most 64)")
        name = None
    protocol = item.enum("protocol", LbProtocol, LbProtocol.TCP)
    algorithm = item.enum("algorithm", LbAlgorithm, LbAlgorithm.ROUNDROBIN)
    backends: list[LbBackend] = []
    for index, raw in enumerate(item.list("backends", []) or []):
        backend = Fields(raw, f"{item.at('backends')}[{index}]", item.errors)
        b_ip, b_port = backend.ipv4("ip"), _port(backend, "port")
        if b_ip is None or b_port is None:
            continue
        if LbBackend(b_ip, b_port) in backends:
            backend.error("", f"{b_ip}:{b_port} is listed twice")
            continue
        backends.append(LbBackend(b_ip, b_port))
    check = _health_check(item, protocol)
    sticky = _stickiness(item, protocol)
    timeouts = _timeouts(item)
    maxconn = item.integer("maxconn", None, lo=1, hi=1_000_000)
    if None in (ip, port, name, protocol, algorithm, timeouts) or check is False or sticky is False:
        return None
    return LoadBalancer(name, ip, port, protocol, algorithm, tuple(backends), check, sticky, timeouts, maxconn)


def _health_check(item: Fields, protocol: LbProtocol | None):
    if not item.has("health_check"):
        return None
    check = Fields(item.raw("health_check"), item.at("health_check"), item.errors)
    default = LbHealthCheck()
    interval = check.integer("interval_ms", default.interval_ms, lo=100, hi=3_600_000)
    rise = check.integer("rise", default.rise, lo=1, hi=100)
    fall = check.integer("fall", default.fall, lo=1, hi=100)
    http_path = check.string("http_path", None)
    if http_path is not None:
        if protocol is not LbProtocol.HTTP:
            check.error("http_path", "is for http listeners; a tcp listener's check is a TCP connect")
            return False
        if not URI.match(http_path):
            check.error("http_path", f"{http_path!r} is not a path (starts with '/', no spaces or quotes)")
            return False
    if None in (interval, rise, fall):
        return False
    return LbHealthCheck(interval, rise, fall, http_path)


def _stickiness(item: Fields, protocol: LbProtocol | None):
    if not item.has("stickiness"):
        return None
    sticky = Fields(item.raw("stickiness"), item.at("stickiness"), item.errors)
    default = LbStickiness("source")
    method = sticky.string("method")
    if method is not None and method not in STICKINESS_METHODS:
        sticky.error("method", f"{method!r} is not one of {', '.join(STICKINESS_METHODS)}")
        return False
    if method == "cookie" and protocol is not LbProtocol.HTTP:
        sticky.error("method", "cookie stickiness needs an http listener")
        return False
    cookie = sticky.string("cookie", default.cookie)
    if cookie is not None and not COOKIE.match(cookie):
        sticky.error("cookie", f"{cookie!r} is not a cookie name (letters, digits, '_', '-')")
        return False
    size = sticky.integer("table_size", default.table_size, lo=1, hi=100_000_000)
    expire = sticky.integer("expire_s", default.expire_s, lo=1, hi=86400 * 365)
    if None in (method, cookie, size, expire):
        return False
    return LbStickiness(method, cookie, size, expire)


def _timeouts(item: Fields) -> LbTimeouts | None:
    default = LbTimeouts()
    if not item.has("timeouts"):
        return default
    t = Fields(item.raw("timeouts"), item.at("timeouts"), item.errors)
    values = [t.integer(key, getattr(default, key), lo=1, hi=86_400_000)
              for key in ("connect_ms", "client_ms", "server_ms")]
    return None if None in values else LbTimeouts(*values)


def _stats(item: Fields) -> LbStats | None:
    ip, port = item.ipv4("ip"), _port(item, "port")
    uri = item.string("uri", LbStats.uri)
    auth = item.string("auth", None)
    public = item.boolean("public", False)
    sources = _sources(item)
    ok = True
    if uri is not None and not URI.match(uri):
        item.error("uri", f"{uri!r} is not a URI path (starts with '/', no spaces or quotes)")
        ok = False
    if auth is not None and not AUTH.match(auth):
        item.error("auth", "must be user:password without spaces or quotes")
        ok = False
    if None in (ip, port, uri, public) or not ok:
        return None
    return LbStats(ip, port, uri, auth, sources, public)


def _cloudstack(doc: Fields) -> CloudStackLb | None:
    from vragent.subsystems.lb.loadbalancer import CERT_NAME, _configuration

    cs = Fields(doc.raw("cloudstack"), doc.at("cloudstack"), doc.errors)
    configuration = _configuration(cs)

    def accepts(key: str) -> tuple[LbAccept, ...]:
        found = []
        for index, raw in enumerate(cs.list(key, []) or []):
            a = Fields(raw, f"{cs.at(key)}[{index}]", cs.errors)
            ip = a.ipv4("ip", None)
            port = _port(a, "port")
            if port is not None:
                found.append(LbAccept(ip, port, _sources(a)))
        return tuple(found)

    listeners, stats = accepts("listeners"), accepts("stats")
    certs = []
    for index, raw in enumerate(cs.list("ssl_certs", []) or []):
        c = Fields(raw, f"{cs.at('ssl_certs')}[{index}]", cs.errors)
        name, cert, key, chain = c.string("name"), c.string("cert"), c.string("key"), c.string("chain", "")
        if name is not None and not CERT_NAME.match(name):
            c.error("name", f"{name!r} is not usable as a file name")
            continue
        if None not in (name, cert, key):
            certs.append(SslCert(name, cert, key, chain or ""))
    if configuration is None:
        return None
    return CloudStackLb(configuration, listeners, stats, tuple(sorted(certs, key=lambda c: c.name)))

