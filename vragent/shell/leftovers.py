"""What a killed apply leaves behind, removed by the next one (under the apply lock).

A write goes through a temporary file beside its target (files.atomic_write:
`.<name>.<pid>.<random>.tmp`), and a daemon's candidate files are checked as `<name>.new`
before they replace the live ones (shell/commit.py). A SIGKILL between the two leaves
them lying there. The next apply removes, in every directory it writes to, the temporary
files of processes that are gone (another live process, say the data server writing its
passwords, keeps its own), and every daemon candidate it may write again.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

_TEMPORARY = re.compile(r"^\..+\.([0-9]+)\.[0-9a-f]{8}\.tmp$")


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep(written: list[Path], candidates: list[Path]) -> list[Path]:
    """Remove the dead writers' temporary files beside each of `written` and each of
    `candidates` (daemon candidate files); the paths removed."""
    removed = []
    for directory in sorted({path.parent for path in written}):
        try:
            entries = list(os.scandir(directory))
        except (FileNotFoundError, NotADirectoryError):
            continue
        for entry in entries:
            match = _TEMPORARY.match(entry.name)
            if match and entry.is_file(follow_symlinks=False) and not _alive(int(match.group(1))):
                removed.append(Path(entry.path))
    for candidate in candidates:
        if candidate.is_file() and not candidate.is_symlink():
            removed.append(candidate)
    for path in removed:
        try:
            path.unlink()
        except FileNotFoundError:
            pass
    return removed
