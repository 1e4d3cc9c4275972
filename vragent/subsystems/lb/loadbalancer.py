"""`loadbalancer` (load_balancer.json): the management server's whole HAProxy configuration.

The management server (HAProxyConfigurator) renders every load balancer rule of the
network into one haproxy.cfg on each change, so a push *replaces* the load-balancing
section of the state (native load balancers included). The payload holds one element:

- `configuration`: haproxy.cfg as a list of lines. An element may hold several lines
  joined by "\\n" (the stats `listen` block and `stick-table`/`stick on` come that way);
  the incumbent splits them, and so do we. Any other control character (CR, NUL, ...)
  is refused: it would either corrupt the file or hide a line from review.
- `add_rules`: "<ip>:<port>:..." per live load balancer rule; each becomes an INPUT
  accept for exactly that IP and TCP port. Only the first two fields are used.
- `remove_rules`: the same for revoked rules. Validated, otherwise informational: the
  INPUT accepts are rebuilt from `add_rules` each time, so a revoked one simply goes.
- `stat_rules`: "<ip or 0.0.0.0/0>:<port>:<source cidrs>:," for the stats listener;
  the source CIDRs ("0/0" means anywhere) restrict its INPUT accept. With stats
  visibility `disabled` (or `default`) HAProxyConfigurator.generateFwRules still adds an
  empty entry: `[""]` means no stats listener.
- `ssl_certs` (newer management servers): [{name, cert, key, chain, password}], written
  as /etc/cloudstack/ssl/<name>.pem (cert, chain, key) readable by root only: where
  HAProxyConfigurator's bind lines name them (`ssl crt /etc/cloudstack/ssl/<pool>.pem`).

Each configuration line must be one the management server's generator emits
(haproxy_lines.py: no `program`, `lua-load` or `external-check` line runs code
here); whether HAProxy takes the values is left to `haproxy -c`, which checks the
candidate before it replaces the live file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from ipaddress import IPv4Network

from vragent.errors import ValidationError
from vragent.model import CloudStackLb, LbAccept, LoadBalancing, RouterState, SslCert
from vragent.fields import Fields, ipv4_or_none, parse_ipv4_network, type_name
from vragent.subsystems.lb import haproxy_lines


# Tab is HAProxy's usual indentation; every other control character is refused.
_BAD_CHARACTER = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
CERT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_ANYWHERE = ("0/0", "0.0.0.0/0")


@dataclass(frozen=True)
class LoadBalancerChange:
    config: CloudStackLb
    paths: tuple[tuple[LbAccept, str], ...]  # where each accept came from, for later checks


def parse(fields: Fields) -> LoadBalancerChange | None:
    rules = fields.list("rules")
    if rules is None:
        return None
    if len(rules) != 1:
        fields.error("rules", f"expected exactly one load balancer configuration, got {len(rules)}")
        return None
    item = Fields(rules[0], fields.at("rules") + "[0]", fields.errors)
    configuration = _configuration(item)
    listeners = _endpoints(item, "add_rules")
    _endpoints(item, "remove_rules")
    stats = _endpoints(item, "stat_rules", stats=True)
    certs = _certs(item)
    if item.boolean("is_transparent", False):
        item.error("is_transparent", "transparent load balancing (the client's address towards the backends) "
                                     "is not supported yet")
        return None
    listed = {(a.ip, a.port): path for a, path in listeners}
    for accept, path in stats:
        if (accept.ip, accept.port) in listed:
            fields.errors.append(ValidationError(path, f"{accept.ip}:{accept.port} is also a load balancer "
                                                       f"({listed[(accept.ip, accept.port)]})"))
    if configuration is None:
        return None
    config = CloudStackLb(configuration=configuration,
                          listeners=tuple(a for a, _ in listeners),
                          stats=tuple(a for a, _ in stats),
                          ssl_certs=certs)
    # The configuration's own path too: its bind lines are checked once the push is merged.
    return LoadBalancerChange(config, (*listeners, *stats, (config, item.path)))


def _configuration(item: Fields) -> tuple[str, ...] | None:
    raw = item.list("configuration")
    if raw is None:
        return None
    lines: list[str] = []
    ok = True
    for index, element in enumerate(raw):
        path = f"{item.at('configuration')}[{index}]"
        if not isinstance(element, str):
            item.errors.append(ValidationError(path, f"expected a string, got {type_name(element)}"))
            ok = False
            continue
        for number, line in enumerate(element.split("\n"), start=1):
            bad = _BAD_CHARACTER.search(line)
            if bad:
                where = f" (line {number} of this element)" if "\n" in element else ""
                item.errors.append(ValidationError(path, f"holds the control character {bad.group()!r}{where}; "
                                                         "only tabs may appear inside a configuration line"))
                ok = False
            elif (problem := haproxy_lines.problem(line)) is not None:
                where = f"line {number} of this element " if "\n" in element else ""
                item.errors.append(ValidationError(path, f"{where}{problem}"))
                ok = False
            lines.append(line)
    if ok and not any(line.strip() for line in lines):
        item.error("configuration", "is empty: HAProxy needs at least a global section and a listener")
        ok = False
    return tuple(lines) if ok else None


def _endpoints(item: Fields, key: str, stats: bool = False) -> list[tuple[LbAccept, str]]:
    raw = item.list(key, [])
    if raw is None:
        return []
    found: list[tuple[LbAccept, str]] = []
    seen: dict[tuple, str] = {}
    for index, entry in enumerate(raw):
        path = f"{item.at(key)}[{index}]"
        if not isinstance(entry, str):
            item.errors.append(ValidationError(path, f"expected a string \"<ip>:<port>:...\", got {type_name(entry)}"))
            continue
        if stats and not entry.strip():
            continue  # no stats listener (see stat_rules above)
        accept = _endpoint(entry, path, item.errors, stats)
        if accept is None:
            continue
        if (accept.ip, accept.port) in seen:
            item.errors.append(ValidationError(path, f"{entry!r} repeats {seen[(accept.ip, accept.port)]}"))
            continue
        seen[(accept.ip, accept.port)] = path
        found.append((accept, path))
    return found


def _endpoint(entry: str, path: str, errors: list[ValidationError], stats: bool) -> LbAccept | None:
    parts = entry.split(":")
    if len(parts) < 2:
        errors.append(ValidationError(path, f"{entry!r} is not of the form <ip>:<port>:..."))
        return None
    address, port_text = parts[0].strip(), parts[1].strip()
    ip = ipv4_or_none(address)
    any_address = stats and address in _ANYWHERE
    ok = True
    if ip is None and not any_address:
        what = "an IPv4 address or 0.0.0.0/0" if stats else "an IPv4 address"
        errors.append(ValidationError(path, f"{entry!r}: {address!r} is not {what}"))
        ok = False
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        errors.append(ValidationError(path, f"{entry!r}: {port_text!r} is not a port (1..65535)"))
        ok = False
    sources: list[IPv4Network] = []
    if stats and len(parts) > 2:
        for cidr in parts[2].split(","):
            cidr = cidr.strip()
            if not cidr or cidr in _ANYWHERE:
                continue
            network = parse_ipv4_network(cidr, path, errors)
            if network is None:
                ok = False
            elif network not in sources:
                sources.append(network)
    if not ok:
        return None
    # Any source among the allowed ones means anywhere.
    if any(network.prefixlen == 0 for network in sources):
        sources = []
    return LbAccept(None if any_address else ip, int(port_text), tuple(sources))


def _certs(item: Fields) -> tuple[SslCert, ...]:
    raw = item.list("ssl_certs", [])
    if raw is None:
        return ()
    certs: list[SslCert] = []
    names: dict[str, str] = {}
    for index, entry in enumerate(raw):
        cert = Fields(entry, f"{item.at('ssl_certs')}[{index}]", item.errors)
        name = cert.string("name")
        body, key = cert.string("cert", multiline=True), cert.string("key", multiline=True)
        chain = cert.string("chain", "", multiline=True) or ""
        if name is not None and not CERT_NAME.match(name):
            cert.error("name", f"{name!r} is not usable as a file name (letters, digits, '_', '.', '-')")
            name = None
        if name is not None and name in names:
            cert.error("name", f"{name!r} is also the name of {names[name]}")
            name = None
        for field_name, text in (("cert", body), ("chain", chain), ("key", key)):
            if text and "-----BEGIN " not in text:
                cert.error(field_name, "is not PEM (no -----BEGIN line)")
                name = None
            elif text and "\x00" in text:
                cert.error(field_name, "holds a NUL byte")
                name = None
        if key and "ENCRYPTED" in key:
            # HAProxy would ask for the pass phrase on a terminal it does not have.
            cert.error("key", "is encrypted; HAProxy needs an unencrypted key")
            name = None
        if name is None or body is None or key is None:
            continue
        names[name] = cert.path
        certs.append(SslCert(name, body, key, chain))
    return tuple(sorted(certs, key=lambda c: c.name))


def merge(state: RouterState, change: LoadBalancerChange) -> RouterState:
    # The management server sends the whole configuration: replace, never merge.
    return replace(state, load_balancing=LoadBalancing(cloudstack=change.config))


def origins(change: LoadBalancerChange) -> dict[object, str]:
    return dict(change.paths)
