"""The guests' data server: metadata and user-data over HTTP (tcp 80) and the password
server (tcp 8080), one small built-in daemon (vragent/metadata_server.py) instead of the
incumbent's Apache vhosts and one password server per address.

Files (under the relocatable root):
- etc/vragent/metadata/server.json: the addresses and ports it listens on; a change
  restarts it (sockets are bound once, before it daemonises, so a bind error is reported);
- etc/vragent/metadata/vmdata.json: every served VM's user-data and metadata, mode 0600
  (user-data may hold secrets); the server re-reads it when it changes (stat on each
  request, and SIGHUP), so a `vmdata` push never restarts it;
- var/lib/vragent/vm-passwords.json: pending passwords, owned by the server
  (shell/passwordfile.py); the agent only adds to it, inside the apply, never converges it
  (an acknowledged password must stay gone).

It listens on every guest network's router address and, on a redundant router, on the
gateway VIP too (bound with IP_FREEBIND, so it runs on BACKUP as well and serves the VIP
the moment keepalived adds it). A VM is recognised by its source address only.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path

from vragent.model import RouterState, VmData
from vragent.paths import Paths

METADATA_PORT = 80
PASSWORD_PORT = 8080
PORTS = (METADATA_PORT, PASSWORD_PORT)


@dataclass(frozen=True)
class MetadataPaths:
    config: Path
    data: Path
    passwords: Path
    pid: Path

    @classmethod
    def of(cls, paths: Paths) -> "MetadataPaths":
        base = paths.under("etc/vragent/metadata")
        return cls(base / "server.json", base / "vmdata.json", paths.under("var/lib/vragent/vm-passwords.json"),
                   paths.run_dir / "metadata.pid")


SERVICE_NAME = "metadata"


def enabled(state: RouterState) -> bool:
    """Served wherever dnsmasq is: a router (or a shared network's dhcpsrvr) with guest
    networks. Always on there, also before any VM has data: a guest asks at boot and must
    get its 404 or its password."""
    return state.serves_guests


def listen_addresses(state: RouterState) -> list[tuple[str, IPv4Address]]:
    """(guest NIC, address) the server answers on: each router address, the gateway VIP
    where it differs (a redundant pair), and each IP alias (a shared network's subnets)."""
    return [(device, address) for address, device in state.own_guest_addresses().items()]


def served_vms(state: RouterState) -> tuple[VmData, ...]:
    """VMs inside a subnet the router serves now (older data of a network that is gone
    stays in the state but is not served)."""
    networks = [s.network for s in state.guest_subnets()]
    return tuple(vm for vm in state.vm_data if any(vm.ip in network for network in networks))


def config_text(state: RouterState, paths: Paths) -> str:
    files = MetadataPaths.of(paths)
    return json.dumps({
        "listen": [str(address) for _, address in listen_addresses(state)],
        "metadata_port": METADATA_PORT,
        "password_port": PASSWORD_PORT,
        "data": str(files.data),
        "passwords": str(files.passwords),
    }, indent=1) + "\n"


def data_text(state: RouterState) -> str:
    vms = {}
    for vm in served_vms(state):
        entry: dict = {"meta-data": [list(pair) for pair in vm.metadata]}
        if vm.userdata is not None:
            entry["user-data"] = base64.b64encode(vm.userdata).decode()
        vms[str(vm.ip)] = entry
    return json.dumps({"vms": vms}, indent=1) + "\n"


def daemon(state: RouterState, paths: Paths):
    from vragent.desired import DaemonDesired

    files = MetadataPaths.of(paths)
    on = enabled(state)
    return DaemonDesired(
        service=SERVICE_NAME,
        enabled=on,
        files={files.config: (config_text(state, paths) if on else None, 0o644),
               files.data: (data_text(state) if on else None, 0o600)},
        restart_files=frozenset({files.config}),
    )


def password_steps(state: RouterState, paths: Paths, pending: dict[str, str]) -> list:
    """The passwords of this push the password server does not hold yet, handed to its file.

    `pending` is what that file holds (observed by the engine): a password still pending is
    not handed over again, so re-applying a push before the VM asked changes nothing;
    once the VM acknowledged it, pushing it again offers it again (a new event). An offer
    without password withdraws a pending one, and is nothing to do when none is pending."""
    from vragent.steps import PasswordHandoverStep

    if not state.password_offers:
        return []
    path = MetadataPaths.of(paths).passwords
    new = {str(o.ip): o.password for o in state.password_offers if pending.get(str(o.ip)) != o.password}
    return [PasswordHandoverStep(path, new)] if new else []
