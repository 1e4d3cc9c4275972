"""Daemon actions owed across a crash: one record per service, written before a daemon's
files are replaced and removed once the daemon has taken them.

The plan compares files: once a new haproxy.cfg is in place, a later apply finds nothing
to change, whether or not HAProxy was ever reloaded. An agent killed between the rename
and the reload would leave HAProxy serving the old listeners for good. So a DaemonStep
records the action it owes (`run/vragent/owed/<service>`: "reload", "restart", ...)
before it replaces anything, and clears it after the action succeeded; the next apply
(or the boot's restore) reads the records (observe) and performs every action still owed,
even where the files already match.

The records live under the run directory on purpose: a reboot empties it, and a booting
router starts every daemon from its files anyway.
"""

from __future__ import annotations

import os
from pathlib import Path

from vragent.shell import files

# Strongest first: an owed restart is not settled by a reload.
ORDER = ("restart", "start", "reload", "signal", "stop")


def directory(run_dir: Path) -> Path:
    return run_dir / "owed"


def record_path(run_dir: Path, service: str) -> Path:
    return directory(run_dir) / service


def record(path: Path, action: str) -> None:
    """Owe `action` (durably: fsynced) unless a stronger action is owed already."""
    current = files.read_text(path)
    if current is not None and current.strip() in ORDER and action in ORDER \
            and ORDER.index(current.strip()) <= ORDER.index(action):
        return
    files.atomic_write(path, action + "\n", 0o600)


def clear(path: Path) -> None:
    files.remove(path)


def read(run_dir: Path) -> dict[str, str]:
    """service name -> the action owed to it."""
    owed = {}
    try:
        entries = list(os.scandir(directory(run_dir)))
    except FileNotFoundError:
        return {}
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
            continue
        text = files.read_text(Path(entry.path))
        if text is not None and text.strip():
            owed[entry.name] = text.strip()
    return owed
