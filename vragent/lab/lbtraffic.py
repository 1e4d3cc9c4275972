"""HTTP traffic for load-balancer tests: backends that answer their own name, and clients.

Like vragent.lab.traffic, everything runs as a tiny stdlib Python program inside a lab
namespace, started with lab.popen() (so lab.down() stops it by PID) or lab.run().
"""

from __future__ import annotations

import json
import subprocess
from types import TracebackType

from vragent.lab.topology import Lab, LabCommandError
from vragent.lab.traffic import READY_TIMEOUT, _LineReader, _python

# Answers every GET with its name (and nothing else), one thread per connection; with a
# header name as third argument, its name, a space and that request header's value.
_NAME_SERVER = r"""
import http.server, sys
name, port, header = sys.argv[1], int(sys.argv[2]), sys.argv[3]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        body = (f"{name} {self.headers.get(header)}" if header else name).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass

class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024

server = Server(("0.0.0.0", port), Handler)
print("listening", server.server_address[1], flush=True)
server.serve_forever()
"""


class HttpNameServer:
    """An HTTP server in a lab namespace whose every answer is its name (default: the role),
    followed by the value of request header `header` when one is named."""

    def __init__(self, lab: Lab, role: str, port: int, name: str | None = None, header: str = "") -> None:
        self.lab, self.role, self.port, self.name, self.header = lab, role, port, name or role, header
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> HttpNameServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> HttpNameServer:
        self._process = self.lab.popen(self.role, _python(_NAME_SERVER, self.name, self.port, self.header),
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        ready = _LineReader(self._process).readline(READY_TIMEOUT)
        if not ready or not ready.startswith("listening "):
            self.stop()
            raise RuntimeError(f"HTTP server on {self.role}:{self.port} did not start ({ready!r})")
        self.port = int(ready.split()[1])
        return self

    def stop(self) -> None:
        if self._process is not None:
            self.lab.terminate(self._process)
            self._process = None


# `count` GETs, each on its own connection; prints one JSON list of bodies ("!error" for failures).
_GET_MANY = r"""
import http.client, json, ssl, sys
host, port, count, timeout = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
path, source, tls = sys.argv[5], sys.argv[6], sys.argv[7] == "1"
answers = []
for _ in range(count):
    try:
        source_address = (source, 0) if source else None
        if tls:  # the lab's certificates are self-signed: encryption, not identity, is under test
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, source_address=source_address,
                                               context=ssl._create_unverified_context())
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout, source_address=source_address)
        conn.request("GET", path)
        response = conn.getresponse()
        body = response.read().decode(errors="replace")
        answers.append(body if response.status == 200 else f"!{response.status} {body[:80]}")
        conn.close()
    except OSError as error:
        answers.append(f"!{type(error).__name__} {error}")
print(json.dumps(answers))
"""


def http_answers(lab: Lab, role: str, host: str, port: int, count: int = 1, timeout: float = 2.0,
                 path: str = "/", source: str | None = None, tls: bool = False) -> list[str]:
    """Bodies of `count` GETs from role to host:port (new connection each); failures start with "!"."""
    argv = _python(_GET_MANY, host, port, count, timeout, path, source or "", int(tls))
    result = lab.run(role, argv, check=False, timeout=count * (timeout + 1) + 10)
    if result.returncode != 0:
        raise LabCommandError(result.returncode, lab.command(role, argv), result.stdout, result.stderr)
    return json.loads(result.stdout)


# Keeps `threads` clients sending GETs (a new connection each) until told to stop on stdin
# and at least `minimum` requests were made. "count" on stdin prints progress; EOF or
# "stop" ends it, and the last line is the summary: requests, failures, first errors,
# answers per backend name.
_LOAD = r"""
import http.client, json, sys, threading
host, port, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
minimum, timeout = int(sys.argv[4]), float(sys.argv[5])
lock, stop = threading.Lock(), threading.Event()
totals = {"requests": 0, "failures": 0, "errors": [], "answers": {}}

def client():
    while True:
        with lock:
            if stop.is_set() and totals["requests"] >= minimum:
                return
        try:
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            conn.request("GET", "/")
            response = conn.getresponse()
            body = response.read().decode(errors="replace")
            conn.close()
            error = None if response.status == 200 else f"HTTP {response.status}: {body[:80]}"
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
        with lock:
            totals["requests"] += 1
            if error is None:
                totals["answers"][body] = totals["answers"].get(body, 0) + 1
            else:
                totals["failures"] += 1
                if len(totals["errors"]) < 10:
                    totals["errors"].append(error)

workers = [threading.Thread(target=client, daemon=True) for _ in range(threads)]
for worker in workers:
    worker.start()
print("started", flush=True)
for line in sys.stdin:
    if line.strip() == "stop":
        break
    with lock:
        print(json.dumps({"requests": totals["requests"], "failures": totals["failures"]}), flush=True)
stop.set()
for worker in workers:
    worker.join()
print(json.dumps(totals), flush=True)
"""


class HttpLoad:
    """A bounded HTTP load from one lab machine: runs until finish() and at least `minimum` requests."""

    def __init__(self, lab: Lab, role: str, host: str, port: int, threads: int = 4, minimum: int = 2000,
                 timeout: float = 5.0) -> None:
        self.lab, self.role, self.host, self.port = lab, role, host, port
        self.threads, self.minimum, self.timeout = threads, minimum, timeout
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: _LineReader | None = None

    def __enter__(self) -> HttpLoad:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._process is not None:
            self.lab.terminate(self._process)
            self._process = None

    def start(self) -> HttpLoad:
        self._process = self.lab.popen(
            self.role, _python(_LOAD, self.host, self.port, self.threads, self.minimum, self.timeout),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self._reader = _LineReader(self._process)
        if self._reader.readline(READY_TIMEOUT) != "started":
            raise RuntimeError(f"load client on {self.role} did not start")
        return self

    def progress(self) -> dict:
        assert self._process is not None and self._process.stdin is not None and self._reader is not None
        self._process.stdin.write(b"count\n")
        self._process.stdin.flush()
        return json.loads(self._reader.readline(READY_TIMEOUT) or "{}")

    def finish(self, timeout: float = 120.0) -> dict:
        """Stop (after at least `minimum` requests) and return the totals."""
        assert self._process is not None and self._process.stdin is not None and self._reader is not None
        self._process.stdin.write(b"stop\n")
        self._process.stdin.flush()
        line = self._reader.readline(timeout)
        self.lab.terminate(self._process)
        self._process = None
        if not line:
            raise RuntimeError("load client gave no summary")
        return json.loads(line)
