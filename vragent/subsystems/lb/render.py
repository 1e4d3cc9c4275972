"""HAProxy: the load balancers' configuration, certificates and daemon (pure).

Two sources, one path. The management server's configuration (`loadbalancer` push) is
kept line for line, except what must change for how vragent runs HAProxy; native load
balancers are rendered from templates/haproxy.cfg.j2. Both become one candidate file
that `haproxy -c` checks before it replaces the live one, and both run the same way:

- master-worker mode (`master-worker`), so a reload is SIGUSR2 to the master, which
  re-executes itself, takes the listening sockets over from the old worker (`-x
  sockpair@`, automatic in master-worker mode since HAProxy 1.9) and lets the old
  worker finish its connections: no connection refused, none cut;
- `daemon` dropped: the service backend decides (`-D` when run directly, `-Ws` under
  systemd, which needs the master in the foreground);
- pidfile, stats socket and server-state file under the relocatable root, so two
  routers (lab namespaces) on one machine never share one; `chroot` relocated too;
- `server-state-file` plus `load-server-state-from-file global` in every defaults
  section: vragent dumps `show servers state` before a reload and the new worker
  starts from it, so health states survive the reload (CloudStack issue #6849).

Every change is a reload: the master re-reads the whole file, global section included.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

from vragent.model import CloudStackLb, LoadBalancer, LbBackend, LbProtocol, LoadBalancing, RouterState
from vragent.paths import Paths
from vragent import templating as templates

CONFIG = "etc/haproxy/haproxy.cfg"
CERT_DIR = "etc/ssl/cloudstack"  # where the management server's bind lines expect them
CHROOT = "var/lib/haproxy"
TEMPLATE = "haproxy.cfg.j2"

SECTIONS = frozenset({"global", "defaults", "frontend", "backend", "listen", "userlist", "peers", "resolvers",
                      "mailers", "program", "http-errors", "ring", "cache"})
# Global directives vragent owns: how HAProxy is started, where its runtime files live.
_OWNED_GLOBAL = frozenset({"daemon", "master-worker", "pidfile", "chroot", "server-state-file",
                           "server-state-base"})
LOAD_STATE = "load-server-state-from-file global"
SERVICE_NAME = "haproxy"  # its service (service.py)


# -- where things live (under the relocatable root) -----------------------------------

def config_path(paths: Paths) -> Path:
    return paths.under(CONFIG)


def cert_dir(paths: Paths) -> Path:
    return paths.under(CERT_DIR)


def chroot_dir(paths: Paths) -> Path:
    return paths.under(CHROOT)


def pidfile(paths: Paths) -> Path:
    return paths.run_dir / "haproxy.pid"


def stats_socket(paths: Paths) -> Path:
    return paths.run_dir / "haproxy.sock"


def server_state_file(paths: Paths) -> Path:
    return paths.run_dir / "haproxy.state"


# -- the management server's configuration ----------------------------------------------

def _word(line: str) -> str:
    stripped = line.strip()
    return stripped.split(None, 1)[0] if stripped and not stripped.startswith("#") else ""


def _sections(lines: tuple[str, ...]) -> list[list[str]]:
    """Lines grouped by section; the first group holds whatever precedes the first header."""
    groups: list[list[str]] = [[]]
    for line in lines:
        if _word(line) in SECTIONS:
            groups.append([line])
        else:
            groups[-1].append(line)
    return groups


def _insert_before_trailing_blanks(group: list[str], added: list[str]) -> list[str]:
    end = len(group)
    while end > 1 and not group[end - 1].strip():
        end -= 1
    return group[:end] + added + group[end:]


def _owned_global_line(line: str) -> bool:
    word = _word(line)
    if word in _OWNED_GLOBAL:
        return True
    return word == "stats" and line.split()[1:2] == ["socket"]


def reconcile(cs: CloudStackLb, paths: Paths) -> str:
    """The management server's lines, changed only where vragent must run HAProxy its way."""
    groups = _sections(cs.configuration)
    had_chroot = any(_word(line) == "chroot" for group in groups if group and _word(group[0]) == "global"
                     for line in group)
    runtime = ["\t# vragent: master-worker mode, runtime files under the router's root",
               "\tmaster-worker"]
    if had_chroot:
        runtime.append(f"\tchroot {chroot_dir(paths)}")
    runtime += [f"\tstats socket {stats_socket(paths)} mode 600 level admin",
                f"\tserver-state-file {server_state_file(paths)}"]

    out: list[list[str]] = []
    seen_global = seen_defaults = False
    for group in groups:
        head = _word(group[0]) if group else ""
        if head == "global":
            group = [f"\t# vragent replaced: {line.strip()}" if _owned_global_line(line) else line for line in group]
            if not seen_global:
                group = _insert_before_trailing_blanks(group, runtime)
            seen_global = True
        elif head == "defaults":
            seen_defaults = True
            if not any(_word(line) == "load-server-state-from-file" for line in group):
                group = _insert_before_trailing_blanks(group, [f"\t{LOAD_STATE}"])
        out.append(group)
    if not seen_global:
        out.insert(1, ["global", *runtime])
    if not seen_defaults:
        out.insert(2, ["defaults", f"\t{LOAD_STATE}"])

    relocated = f"{cert_dir(paths)}/"
    body = [re.sub(r"(?<!\S)/etc/ssl/cloudstack/", relocated, line) if "/etc/ssl/cloudstack/" in line else line
            for group in out for line in group]
    header = ["# Generated by vragent from the management server's load balancer configuration "
              "(load_balancer.json); do not edit.",
              "# Lines marked \"vragent\" were changed so HAProxy runs in master-worker mode under vragent."]
    # The certificates' digests make every certificate change a change of this file too,
    # so its candidate is checked together with theirs and HAProxy reloads to use them.
    import hashlib  # here, not at import time: every apply imports this module

    header += [f"# certificate {c.name}.pem sha256:{hashlib.sha256(c.pem().encode()).hexdigest()[:16]}"
               for c in cs.ssl_certs]
    return "\n".join(header + body).rstrip("\n") + "\n"


# -- native load balancers ----------------------------------------------------------------

def server_options(lb: LoadBalancer, backend: LbBackend) -> str:
    """The words after `server <name> <ip>:<port>`."""
    words = []
    if lb.health_check is not None:
        check = lb.health_check
        words += ["check", "inter", f"{check.interval_ms}ms", "rise", str(check.rise), "fall", str(check.fall)]
    if lb.stickiness is not None and lb.stickiness.method == "cookie" and lb.protocol is LbProtocol.HTTP:
        words += ["cookie", backend.server_name]
    return "".join(f" {word}" for word in words)


def native(lb: LoadBalancing, paths: Paths) -> str:
    return templates.render(
        TEMPLATE,
        maxconn=lb.maxconn,
        chroot=chroot_dir(paths),
        stats_socket=stats_socket(paths),
        server_state_file=server_state_file(paths),
        balancers=lb.balancers,
        stats=lb.stats,
        server_options=server_options,
    )


def config_text(lb: LoadBalancing, paths: Paths) -> str | None:
    if not lb.active:
        return None
    if lb.cloudstack is not None:
        return reconcile(lb.cloudstack, paths)
    return native(lb, paths)


# -- the daemon ---------------------------------------------------------------------------

def check_argv(live: Path, candidates: dict[Path, Path]) -> list[str]:
    """`haproxy -c` on the candidate (or, when only certificates changed, the live file)."""
    return ["haproxy", "-c", "-f", str(candidates.get(live, live))]


def daemon(state: RouterState, paths: Paths):
    from vragent.desired import DaemonDesired

    lb = state.load_balancing
    config = config_path(paths)
    files: dict[Path, tuple[str | None, int]] = {config: (config_text(lb, paths), 0o644)}
    if lb.active and lb.cloudstack is not None:
        for cert in lb.cloudstack.ssl_certs:
            # Private keys: root only. HAProxy reads them as root before it drops privileges.
            files[cert_dir(paths) / f"{cert.name}.pem"] = (cert.pem(), 0o600)
    return DaemonDesired(
        service=SERVICE_NAME,
        enabled=lb.active,
        files=files,
        checker=functools.partial(check_argv, config),
        owned_dirs=(cert_dir(paths),),
    )
