"""The guests' data server: metadata and user-data on tcp 80, passwords on tcp 8080.

    python3 -m vragent.metadata_server --config FILE [--pidfile FILE] [--foreground]

One process, one thread per connection (http.server), one listening socket per address
and port named in the config that vragent renders (subsystems/guestdata/render.py). Every answer
depends on the client's source address only: that is how the incumbent tells VMs apart
and what cloud-init's CloudStack datasource and cloudbase-init expect
(cloudstack-vr-wave2.md §2.2-§2.4).

Metadata (port 80), paths matched case-insensitively, query strings ignored, one
trailing '/' optional:
  /latest/user-data            the decoded user-data bytes, or 404
  /latest/meta-data            the manifest: the VM's keys, one per line (only keys that exist)
  /latest/meta-data/<key>      the raw value, or 404
  /latest/<key>                the same (the incumbent's EC2-style shortcuts)
anything else 404.

Passwords (port 8080), any path, status 200 always (cloudbase-init requires it):
  DomU_Request: send_my_password   the VM's pending password, or "saved_password"
  DomU_Request: saved_password     forget it (the VM has set it); "saved_password"
  anything else                    "bad_request"

Data files are re-read when they change (their inode, size or mtime; vragent replaces
them atomically) or on SIGHUP: a push never restarts the server. Sockets are bound
before it daemonises, so a bind failure is its exit status, and with IP_FREEBIND, so a
VRRP gateway address it does not hold yet (a BACKUP router) is served once it arrives.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import socketserver
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import unquote, urlsplit

from vragent.shell import passwordfile

IP_FREEBIND = getattr(socket, "IP_FREEBIND", 15)  # linux/in.h; Python has the name from 3.12
REQUEST_TIMEOUT = 10.0  # seconds a client may take to send its request
# Connections served at once, per listening socket: a guest that opens thousands of idle
# connections must not cost a 256 MB router a thread (and its stack) each.
MAX_CONNECTIONS = 64
NO_PASSWORD, BAD_REQUEST = b"saved_password", b"bad_request"


@dataclass(frozen=True)
class Vm:
    userdata: bytes | None
    manifest: bytes
    values: dict[str, bytes]  # lower-case key -> value


def parse_vms(text: str | None) -> dict[str, Vm]:
    if not text:
        return {}
    vms = {}
    for ip, entry in json.loads(text).get("vms", {}).items():
        pairs = entry.get("meta-data", [])
        userdata = entry.get("user-data")
        vms[ip] = Vm(base64.b64decode(userdata) if userdata is not None else None,
                     "".join(f"{key}\n" for key, _ in pairs).encode(),
                     {key.lower(): value.encode() for key, value in pairs})
    return vms


@dataclass
class Watched:
    """A file's parsed content, parsed again when the file is replaced or changed."""

    path: Path
    parse: Callable[[Path], Any]
    _seen: tuple | None = None
    _value: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _identity(self) -> tuple | None:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return None
        return info.st_ino, info.st_size, info.st_mtime_ns

    def get(self) -> Any:
        with self._lock:
            identity = self._identity()
            if identity != self._seen or self._value is None:
                self._value = self.parse(self.path)
                self._seen = identity
            return self._value

    def invalidate(self) -> None:
        with self._lock:
            self._value = None


def _read_vms(path: Path) -> dict[str, Vm]:
    try:
        return parse_vms(path.read_text())
    except FileNotFoundError:
        return {}
    except (ValueError, AttributeError, TypeError) as exc:
        print(f"metadata: {path} is unreadable ({exc}); serving nothing", file=sys.stderr)
        return {}


def resolve(vms: dict[str, Vm], source: str, raw_path: str) -> tuple[int, bytes]:
    """(status, body) of a metadata request from `source`."""
    path = unquote(urlsplit(raw_path).path).lower()
    if not path.startswith("/latest/"):
        return 404, b""
    rest = path[len("/latest/"):]
    rest = rest[:-1] if rest.endswith("/") else rest
    vm = vms.get(source)
    if vm is None:
        return 404, b""
    if rest == "user-data":
        return (200, vm.userdata) if vm.userdata is not None else (404, b"")
    if rest == "meta-data":
        return 200, vm.manifest
    key = rest[len("meta-data/"):] if rest.startswith("meta-data/") else rest
    value = vm.values.get(key)
    return (200, value) if value is not None else (404, b"")


class _Handler(BaseHTTPRequestHandler):
    timeout = REQUEST_TIMEOUT

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no request log: it would only repeat which VM asked for what

    def reply(self, status: int, body: bytes, content_type: str = "text/plain", send_body: bool = True) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if send_body:
            self.wfile.write(body)


class MetadataHandler(_Handler):
    server_version = "vragent-metadata"

    def do_GET(self) -> None:
        self._answer(send_body=True)

    def do_HEAD(self) -> None:
        self._answer(send_body=False)

    def _answer(self, send_body: bool) -> None:
        status, body = resolve(self.server.vms.get(), self.client_address[0], self.path)
        if status != 200:
            body = b"Not Found\n"
        kind = "application/octet-stream" if urlsplit(self.path).path.lower().rstrip("/").endswith("user-data") \
            else "text/plain"
        self.reply(status, body, kind, send_body)


class PasswordHandler(_Handler):
    server_version = "vragent-password"
    protocol_version = "HTTP/1.0"  # one request per connection, as the incumbent answers

    def do_GET(self) -> None:
        request = (self.headers.get("DomU_Request") or "").strip()
        source = self.client_address[0]
        if request == "send_my_password":
            password = self.server.passwords.get().get(source)
            body = password.encode() if password else NO_PASSWORD
        elif request == "saved_password":
            passwordfile.update(self.server.passwords.path, {source: None})
            self.server.passwords.invalidate()
            body = NO_PASSWORD
        else:
            body = BAD_REQUEST
        self.reply(200, body)


class Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler, vms: Watched, passwords: Watched):
        self.vms, self.passwords = vms, passwords
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: the client retries (cloud-init does)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def server_bind(self) -> None:
        self.socket.setsockopt(socket.SOL_IP, IP_FREEBIND, 1)
        # TCPServer's bind only: HTTPServer's would resolve the address's name (getfqdn),
        # seconds in a namespace without DNS, for a name nothing uses.
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = self.server_address[:2]


def listeners(config: dict, vms: Watched, passwords: Watched) -> list[Listener]:
    made: list[Listener] = []
    try:
        for address in config["listen"]:
            made.append(Listener((address, config["metadata_port"]), MetadataHandler, vms, passwords))
            made.append(Listener((address, config["password_port"]), PasswordHandler, vms, passwords))
    except OSError:
        for listener in made:
            listener.server_close()
        raise
    return made


def _daemonise(pidfile: Path | None) -> None:
    """Detach (double fork); the caller's process exits once the daemon wrote its pidfile."""
    ready_read, ready_write = os.pipe()
    if os.fork() > 0:
        os.close(ready_write)
        ok = os.read(ready_read, 1) == b"1"
        os._exit(0 if ok else 1)
    os.close(ready_read)
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    os.chdir("/")
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    _write_pidfile(pidfile)
    os.write(ready_write, b"1")
    os.close(ready_write)


def _write_pidfile(pidfile: Path | None) -> None:
    if pidfile is not None:
        from vragent.shell import files

        files.atomic_write(pidfile, f"{os.getpid()}\n", 0o644)


def _notify_systemd(message: bytes) -> None:
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return
    if address.startswith("@"):
        address = "\0" + address[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.sendto(message, address)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vragent.metadata_server")
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--pidfile", type=Path)
    parser.add_argument("--foreground", action="store_true", help="do not detach (systemd)")
    args = parser.parse_args(argv)
    try:
        config = json.loads(args.config.read_text())
        vms = Watched(Path(config["data"]), _read_vms)
        passwords = Watched(Path(config["passwords"]), passwordfile.read)
        servers = listeners(config, vms, passwords)
    except (OSError, ValueError, KeyError) as exc:
        print(f"metadata server: {exc}", file=sys.stderr)
        return 1
    if args.foreground:
        _write_pidfile(args.pidfile)
    else:
        _daemonise(args.pidfile)

    stopping = threading.Event()

    def reread(signum, frame) -> None:
        vms.invalidate()
        passwords.invalidate()

    signal.signal(signal.SIGHUP, reread)
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    signal.signal(signal.SIGINT, lambda *_: stopping.set())
    for server in servers:
        threading.Thread(target=server.serve_forever, name=f"serve {server.server_address}", daemon=True).start()
    _notify_systemd(b"READY=1")
    while not stopping.wait(3600):
        pass
    _notify_systemd(b"STOPPING=1")
    # No graceful shutdown() (it waits out each loop's poll interval, one server after the
    # other): close the listening sockets and exit; answers are a few bytes each.
    for server in servers:
        server.server_close()
    if args.pidfile is not None:
        args.pidfile.unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
