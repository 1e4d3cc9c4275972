"""A guest VM's side of the data server: real HTTP requests from inside its namespace.

Each call runs one Python process in the VM's namespace that makes every request in
turn (http.client, as cloudbase-init does), so a test pays one process start, not one
per request.
"""

from __future__ import annotations

import base64
import json
import sys
from dataclasses import dataclass

from vragent.lab.topology import Lab

_CLIENT = """
import base64, http.client, json, sys
host, requests, timeout = sys.argv[1], json.loads(sys.argv[2]), float(sys.argv[3])
answers = []
for port, path, headers in requests:
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=headers)
        response = connection.getresponse()
        answers.append([response.status, base64.b64encode(response.read()).decode()])
    except OSError as exc:
        answers.append([None, str(exc)])
    finally:
        connection.close()
print(json.dumps(answers))
"""


@dataclass(frozen=True)
class Answer:
    status: int | None  # None: no connection (refused, timed out)
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def fetch(lab: Lab, role: str, host: str, *requests: tuple[int, str, dict], timeout: float = 5.0) -> list[Answer]:
    """GET each (port, path, headers) from `role`'s namespace to `host`."""
    result = lab.run(role, [sys.executable, "-c", _CLIENT, host, json.dumps(requests), str(timeout)],
                     timeout=30 + timeout * len(requests))
    return [Answer(status, base64.b64decode(body) if status is not None else body.encode())
            for status, body in json.loads(result.stdout)]


def metadata(lab: Lab, role: str, host: str, *paths: str, timeout: float = 5.0) -> list[Answer]:
    return fetch(lab, role, host, *((80, path, {}) for path in paths), timeout=timeout)


def password(lab: Lab, role: str, host: str, *requests: str | None) -> list[Answer]:
    """The password protocol: each request is a DomU_Request value (None: no header)."""
    return fetch(lab, role, host, *((8080, "/", {"DomU_Request": r} if r else {}) for r in requests))
