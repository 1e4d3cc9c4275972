"""A BGP peer for the lab: a real FRR (zebra + bgpd) in a lab namespace (the upstream
host), with its files, sockets, pidfiles and log under a directory of its own, never
/etc/frr or /run/frr; stopped by the PIDs its pidfiles name. And readers of what a
router's or a peer's BGP says (vtysh over the vty sockets of that directory)."""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from vragent.lab.topology import Lab

ZEBRA, BGPD = "/usr/lib/frr/zebra", "/usr/lib/frr/bgpd"


@dataclass
class FrrPeer:
    lab: Lab
    role: str
    directory: Path
    asn: int
    router_id: str
    neighbors: list[tuple[str, int, str | None]]  # (address, remote AS, password)
    networks: list[str] = field(default_factory=list)  # announced whether routed or not

    def _write(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / "zebra.conf").write_text(f"hostname lab-{self.role}\nlog file {self.directory}/zebra.log\n")
        lines = [f"hostname lab-{self.role}", f"log file {self.directory}/bgpd.log", f"router bgp {self.asn}",
                 f" bgp router-id {self.router_id}", " no bgp ebgp-requires-policy", " no bgp network import-check"]
        for address, remote_as, password in self.neighbors:
            lines += [f" neighbor {address} remote-as {remote_as}", f" neighbor {address} timers connect 2"]
            if password:
                lines.append(f" neighbor {address} password {password}")
        lines += [" address-family ipv4 unicast", *(f"  network {n}" for n in self.networks), " exit-address-family"]
        (self.directory / "bgpd.conf").write_text("\n".join(lines) + "\n")

    def _argv(self, binary: str, name: str) -> list[str]:
        d = self.directory
        return [binary, "-d", "-u", "root", "-g", "frrvty", "-f", str(d / f"{name}.conf"), "-i", str(d / f"{name}.pid"),
                "-z", str(d / "zserv.api"), "--vty_socket", str(d), "-P", "0"]

    def start(self) -> "FrrPeer":
        self._write()
        for binary, name in ((ZEBRA, "zebra"), (BGPD, "bgpd")):
            self.lab.run(self.role, self._argv(binary, name), timeout=30)
            wait_for(lambda: (self.directory / f"{name}.pid").exists(), 10, f"{name} of {self.role}")
        return self

    def stop(self) -> None:
        for name in ("bgpd", "zebra"):
            pidfile = self.directory / f"{name}.pid"
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
                time.sleep(0.05)
            if os.path.exists(f"/proc/{pid}"):
                os.kill(pid, signal.SIGKILL)

    def __enter__(self) -> "FrrPeer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def vtysh_json(lab: Lab, role: str, vty_dir: Path, command: str) -> dict:
    done = lab.run(role, ["vtysh", "--vty_socket", str(vty_dir), "-c", command], check=False, timeout=30)
    try:
        return json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        return {}


def session_state(lab: Lab, role: str, vty_dir: Path, neighbor: str) -> str | None:
    """The BGP state of `neighbor` ("Established", "Active", ...), None without a session."""
    shown = vtysh_json(lab, role, vty_dir, f"show bgp neighbors {neighbor} json")
    return shown.get(neighbor, {}).get("bgpState")


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.2)


def bgp_routes(lab: Lab, role: str) -> dict[str, str]:
    """The kernel's BGP-learned routes in `role`'s main table: destination -> gateway."""
    shown = json.loads(lab.run(role, ["ip", "-j", "route", "show", "proto", "bgp"]).stdout or "[]")
    return {r["dst"]: r.get("gateway", "") for r in shown}
