"""A remote-access VPN client for the lab: a real strongSwan (charon-systemd + swanctl) in a
lab namespace, with its own strongswan.conf, swanctl.conf, vici socket and log under a
directory of its own, started through the lab (so it is killed by PID), never touching
/etc/strongswan.conf or /var/run. Plus the raw packets the firewall tests need: an L2TP
SCCRQ (RFC 2661 §6.1) and a bare ESP packet.
"""

from __future__ import annotations

import os
import struct
import subprocess
import time
from pathlib import Path

from vragent.lab.topology import Lab

CHARON = "/usr/sbin/charon-systemd"


class IpsecClient:
    """An L2TP/IPsec road warrior's IPsec half: IKEv1 main mode with a PSK, transport mode
    for udp 1701 to the server, as Windows, macOS and Android clients configure it."""

    def __init__(self, lab: Lab, role: str, directory: Path, server: str, psk: str):
        self.lab, self.role, self.dir = lab, role, Path(directory)
        self.server, self.psk = server, psk
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf = self.dir / "strongswan.conf"
        self.swanctl_conf = self.dir / "swanctl.conf"
        self.vici = self.dir / "charon.vici"
        self.log = self.dir / "charon.log"
        self.process: subprocess.Popen | None = None

    def _write(self) -> None:
        plugins = "random nonce aes sha1 sha2 md5 hmac gmp kdf pem pkcs1 pubkey x509 kernel-netlink socket-default vici"
        self.conf.write_text(
            "charon-systemd {\n"
            "    load_modular = no\n"
            f"    load = {plugins}\n"
            "    install_routes = no\n"
            f"    plugins {{\n        vici {{\n            socket = unix://{self.vici}\n        }}\n    }}\n"
            f"    filelog {{\n        lab {{\n            path = {self.log}\n            default = 1\n"
            "            ike = 2\n        }\n    }\n"
            "}\n"
            "swanctl {\n    load = random nonce aes sha1 sha2 pem pkcs1 pubkey x509\n}\n")
        secret = self.psk.replace("\\", "\\\\").replace('"', '\\"')
        self.swanctl_conf.write_text(
            "connections {\n"
            "    l2tp {\n"
            "        version = 1\n"
            f"        remote_addrs = {self.server}\n"
            "        local {\n            auth = psk\n        }\n"
            "        remote {\n            auth = psk\n        }\n"
            "        children {\n            l2tp {\n                mode = transport\n"
            "                local_ts = dynamic[udp/1701]\n                remote_ts = dynamic[udp/1701]\n"
            "            }\n        }\n"
            "    }\n"
            "}\n"
            f'secrets {{\n    ike-l2tp {{\n        secret = "{secret}"\n    }}\n}}\n')

    def env(self) -> list[str]:
        return ["env", f"STRONGSWAN_CONF={self.conf}"]

    def swanctl(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess:
        return self.lab.run(self.role, [*self.env(), "swanctl", *args, "--uri", f"unix://{self.vici}"],
                            check=False, timeout=timeout)

    def start(self) -> None:
        self._write()
        # `env` execs charon-systemd in place: the PID the lab tracks is charon's own.
        self.process = self.lab.popen(self.role, [*self.env(), CHARON])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.vici.exists() and self.swanctl("--stats").returncode == 0:
                break
            time.sleep(0.05)
        loaded = self.swanctl("--load-all", "--noprompt", "--file", str(self.swanctl_conf))
        if loaded.returncode != 0:
            raise RuntimeError(f"the lab's IPsec client could not load its configuration: {loaded.stderr}")

    def initiate(self, timeout: int = 8) -> subprocess.CompletedProcess:
        """Bring the SA up: IKE (main mode, PSK), then quick mode for L2TP."""
        return self.swanctl("--initiate", "--child", "l2tp", "--timeout", str(timeout), timeout=timeout + 10)

    def stop(self) -> None:
        if self.process is not None:
            self.lab.terminate(self.process)
            self.process = None

    def __enter__(self) -> "IpsecClient":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def ike_established(output: str) -> bool:
    return "IKE_SA l2tp[" in output and "established between" in output


def server_ike_sas(lab: Lab, role: str, strongswan_conf: Path, vici: Path) -> str:
    """`swanctl --list-sas` on the router's own charon (through its vici socket)."""
    return lab.run(role, ["env", f"STRONGSWAN_CONF={strongswan_conf}", "swanctl", "--list-sas",
                          "--uri", f"unix://{vici}"], check=False).stdout


# --- raw packets -----------------------------------------------------------------------

def sccrq(tunnel_id: int = 4242) -> bytes:
    """An L2TP Start-Control-Connection-Request: what a client sends first (RFC 2661 §6.1)."""
    def avp(attribute: int, value: bytes, mandatory: bool = True) -> bytes:
        flags = 0x8000 if mandatory else 0
        return struct.pack("!HHH", flags | (6 + len(value)), 0, attribute) + value

    avps = (avp(0, struct.pack("!H", 1))  # Message Type: SCCRQ
            + avp(2, struct.pack("!BB", 1, 0))  # Protocol Version 1.0
            + avp(3, struct.pack("!I", 3))  # Framing Capabilities: sync and async
            + avp(7, b"lab-client")  # Host Name
            + avp(9, struct.pack("!H", tunnel_id))  # Assigned Tunnel ID
            + avp(10, struct.pack("!H", 4), mandatory=False))  # Receive Window Size
    # T=1 L=1 S=1, version 2; length; tunnel 0; session 0; Ns 0; Nr 0.
    header = struct.pack("!HHHHHH", 0xC802, 12 + len(avps), 0, 0, 0, 0)
    return header + avps


SCCRP = 2  # the server's answer to an SCCRQ


def l2tp_message_type(packet: bytes) -> int | None:
    """The Message Type AVP of an L2TP control packet (the first AVP, RFC 2661 §4.4.1)."""
    if len(packet) < 20 or not packet[0] & 0x80:
        return None
    return struct.unpack("!H", packet[18:20])[0]


L2TP_PROBE = r"""
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind((sys.argv[2], 0))
sock.settimeout(float(sys.argv[3]))
sock.sendto(bytes.fromhex(sys.argv[4]), (sys.argv[1], 1701))
try:
    print(sock.recv(4096).hex())
except socket.timeout:
    print("")
"""


def l2tp_probe(lab: Lab, role: str, server: str, source: str, timeout: float = 2.0) -> bytes:
    """Send an SCCRQ from `role` to server:1701 and return the first answer (b"" for none)."""
    import sys

    out = lab.run(role, [sys.executable, "-c", L2TP_PROBE, server, source, str(timeout), sccrq().hex()],
                  timeout=timeout + 10).stdout.strip()
    return bytes.fromhex(out)


ESP_SEND = r"""
import socket, sys
sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
for _ in range(int(sys.argv[2])):
    sock.sendto(bytes.fromhex("0000abcd00000001") + bytes(32), (sys.argv[1], 0))
"""


def send_esp(lab: Lab, role: str, destination: str, count: int = 3) -> None:
    """Bare ESP packets (an unknown SPI: the router drops them after the firewall)."""
    import sys

    lab.run(role, [sys.executable, "-c", ESP_SEND, destination, str(count)])


def kernel_has_esp() -> bool:
    """Whether this kernel can hold an ESP SA (CONFIG_INET_ESP); without it, IKE completes
    but no IPsec SA can be installed, so no L2TP can pass."""
    try:
        import gzip

        with gzip.open("/proc/config.gz", "rt") as config:
            return any(line.strip() in ("CONFIG_INET_ESP=y", "CONFIG_INET_ESP=m") for line in config)
    except OSError:
        return os.path.exists("/sys/module/esp4")


class SiteToSitePeer(IpsecClient):
    """The far end of a site-to-site VPN: a real charon in a lab namespace (its own files
    and vici socket), configured as CloudStack's customer gateway would be: IKEv2, PSK
    with both gateways' IPs as identities, ESP in tunnel mode between its networks and
    the VPC."""

    def __init__(self, lab: Lab, role: str, directory: Path, local: str, router: str, local_ts: str,
                 remote_ts: str, psk: str, ike: str = "aes128-sha1-modp1536", esp: str = "aes128-sha1"):
        super().__init__(lab, role, directory, router, psk)
        self.local, self.local_ts, self.remote_ts, self.ike, self.esp = local, local_ts, remote_ts, ike, esp

    def _write(self) -> None:
        super()._write()  # strongswan.conf; the connection is replaced below
        secret = self.psk.replace("\\", "\\\\").replace('"', '\\"')
        self.swanctl_conf.write_text(
            "connections {\n    s2s {\n        version = 2\n"
            f"        local_addrs = {self.local}\n        remote_addrs = {self.server}\n"
            f"        proposals = {self.ike}\n"
            f"        local {{\n            auth = psk\n            id = {self.local}\n        }}\n"
            f"        remote {{\n            auth = psk\n            id = {self.server}\n        }}\n"
            "        children {\n            s2s {\n                mode = tunnel\n"
            f"                local_ts = {self.local_ts}\n                remote_ts = {self.remote_ts}\n"
            f"                esp_proposals = {self.esp}\n            }}\n        }}\n"
            "    }\n}\n"
            f'secrets {{\n    ike-s2s {{\n        id-a = {self.local}\n        id-b = {self.server}\n'
            f'        secret = "{secret}"\n    }}\n}}\n')

    def initiate(self, timeout: int = 8) -> subprocess.CompletedProcess:
        return self.swanctl("--initiate", "--child", "s2s", "--timeout", str(timeout), timeout=timeout + 10)


def s2s_established(output: str) -> bool:
    return "IKE_SA s2s[" in output and "established between" in output
