"""A real DHCP client (ISC dhclient) in a lab VM, with a script that records what it got.

dhclient's own script would rewrite the host's /etc/resolv.conf; ours only configures the
VM's NIC inside its namespace and writes the lease options to a file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vragent.lab.topology import Lab

SCRIPT = """#!/bin/sh
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    ip -4 addr flush dev "$interface"
    ip -4 addr add "$new_ip_address/$new_subnet_mask" dev "$interface"
    [ -n "$new_interface_mtu" ] && ip link set dev "$interface" mtu "$new_interface_mtu"
    [ -n "$new_routers" ] && ip -4 route replace default via "${new_routers%% *}" dev "$interface"
    env | grep '^new_' | sort > "{out}"
    echo "reason=$reason" >> "{out}"
    ;;
esac
exit 0
"""

CONFIG = """request subnet-mask, broadcast-address, routers, domain-name, domain-name-servers,
        host-name, interface-mtu;
timeout 10;
initial-interval 2;
"""


@dataclass
class Lease:
    options: dict[str, str]
    discovers: int  # DHCPDISCOVER messages the client had to send
    log: str

    @property
    def ip(self) -> str | None:
        return self.options.get("new_ip_address")


class DhcpClient:
    def __init__(self, lab: Lab, role: str, directory: Path):
        self.lab, self.role = lab, role
        self.dir = directory / f"dhclient-{role}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.out = self.dir / "lease.env"
        self.script = self.dir / "script.sh"
        self.script.write_text(SCRIPT.replace("{out}", str(self.out)))
        self.script.chmod(0o755)
        (self.dir / "dhclient.conf").write_text(CONFIG)
        self.pidfile = self.dir / "dhclient.pid"
        self.leases = self.dir / "dhclient.leases"

    def _argv(self) -> list[str]:
        return ["dhclient", "-4", "-1", "-v", "-cf", str(self.dir / "dhclient.conf"), "-lf", str(self.leases),
                "-pf", str(self.pidfile), "-sf", str(self.script), "eth0"]

    def obtain(self, timeout: float = 20.0) -> Lease:
        """Run dhclient until it holds a lease (it then stays in the background to renew)."""
        self.stop()
        self.out.unlink(missing_ok=True)
        result = self.lab.run(self.role, self._argv(), check=False, timeout=timeout)
        log = result.stdout + result.stderr
        options = {}
        if self.out.exists():
            for line in self.out.read_text().splitlines():
                key, _, value = line.partition("=")
                options[key] = value
        return Lease(options, log.count("DHCPDISCOVER"), log)

    def stop(self) -> None:
        """Kill our dhclient by its PID (never by name); the lease file stays for a renewal."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.02)
        self.pidfile.unlink(missing_ok=True)


def dig(lab: Lab, role: str, server: str, name: str, timeout: int = 1) -> list[str]:
    """A real DNS query from a lab machine; the answers, or [] when nobody answered."""
    result = lab.run(role, ["dig", f"@{server}", name, "A", "+short", f"+time={timeout}", "+tries=1"],
                     check=False, timeout=timeout * 3 + 5)
    if result.returncode != 0:
        return []
    return [line for line in result.stdout.split() if line and not line.startswith(";")]


def process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


__all__ = ["DhcpClient", "Lease", "dig", "process_exists", "subprocess"]
