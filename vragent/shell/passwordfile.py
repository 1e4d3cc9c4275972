"""The password server's pending passwords: one JSON file, {"<vm ip>": "<password>"}, mode 0600.

Two writers share it: the agent adds a VM's new password while applying a `vmpassword`
push, and the server (metadata_server.py) removes it when the VM acknowledges it
(`DomU_Request: saved_password`). Each read-modify-write holds an exclusive flock on a
lock file beside it, so neither can undo the other's change; each write is atomic, so
the server's stat-and-reload never sees half a file. The file survives restarts of the
server and of the router (it lives under var/lib), and is the only place a password is
kept: the agent's state never holds one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from pathlib import Path

from vragent.shell import files

MODE = 0o600


@contextlib.contextmanager
def locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path.with_name(path.name + ".lock"), os.O_RDWR | os.O_CREAT, MODE)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def read(path: Path) -> dict[str, str]:
    """The pending passwords; a missing or damaged file holds none (a damaged one is
    replaced at the next write rather than stopping the server)."""
    text = files.read_text(path)
    if not text:
        return {}
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    if not isinstance(data, dict):
        return {}
    return {str(k): v for k, v in data.items() if isinstance(v, str)}


def update(path: Path, changes: dict[str, str | None]) -> dict[str, str | None]:
    """Set (or, with None, remove) the passwords of some VMs; returns what they were before,
    in the same form, so the change can be undone with another update()."""
    with locked(path):
        current = read(path)
        before = {ip: current.get(ip) for ip in changes}
        wanted = dict(current)
        for ip, password in changes.items():
            if password is None:
                wanted.pop(ip, None)
            else:
                wanted[ip] = password
        if wanted != current:
            files.atomic_write(path, json.dumps(wanted, sort_keys=True, indent=0) + "\n", MODE)
    return before
