"""The VRRP role record: what keepalived last said this router is (read by every apply, written
by transitions)."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from vragent.paths import Paths
from vragent.shell import files
from vragent.subsystems.vrrp.model import Role


@dataclass(frozen=True)
class RoleRecord:
    role: Role
    since: float = 0.0  # wall clock of the last change
    reason: str = ""
    transitions: int = 0  # role changes since the record was created (boot: /run is a tmpfs)
    released: bool = False  # FAULT with the VIPs taken down by vragent (keepalived was gone)


def role_file(paths: Paths):
    return paths.run_dir / "redundant-state"


def read_role(paths: Paths) -> RoleRecord | None:
    text = files.read_text(role_file(paths))
    if not text:
        return None
    try:
        data = json.loads(text)
        return RoleRecord(Role(data["role"]), data.get("since", 0.0), data.get("reason", ""),
                          data.get("transitions", 0), data.get("released", False))
    except (ValueError, KeyError, TypeError):
        return None


def write_role(paths: Paths, role: Role, reason: str, released: bool = False) -> RoleRecord:
    previous = read_role(paths)
    changed = previous is None or previous.role is not role
    moved = changed or previous.released != released  # `since` dates the release too (restart hold-off)
    record = RoleRecord(role, time.time() if moved else previous.since, reason,
                        (previous.transitions if previous else 0) + (1 if changed and previous else 0), released)
    files.atomic_write(role_file(paths), json.dumps(record.__dict__ | {"role": role.value}) + "\n", 0o644)
    return record


def current_role(paths: Paths) -> Role:
    """The role the regular apply converges to. Never PRIMARY unless keepalived said so:
    a router that has not heard from VRRP yet (first apply, boot) is a BACKUP."""
    record = read_role(paths)
    return record.role if record is not None else Role.BACKUP
