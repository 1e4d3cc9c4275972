"""One lock serialises applies; a waiting push gives up after a bounded time.

The holder writes who it is into the lock file (pid, what it applies, since when), so a
waiting push can say whom it waits for and for how long, and a timeout names the holder.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from vragent.errors import LockTimeout

DEFAULT_WAIT = 120.0  # the management server's own per-script timeout is 10 minutes
SAY_WAITING_AFTER = 1.0  # seconds of silent waiting before the push says whom it waits for


@dataclass
class Held:
    waited: float = 0.0  # seconds spent waiting for the lock


def holder(fd: int) -> str:
    """Who holds the lock, as its holder wrote it: 'pid 123 (push a.json) for 4 s'."""
    try:
        text = os.pread(fd, 4096, 0).decode(errors="replace")
        record = json.loads(text)
        since = time.time() - float(record["since"])
        return f"pid {record['pid']} ({record['what']}) for {since:.0f} s"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _write_holder(fd: int, what: str) -> None:
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"pid": os.getpid(), "what": what, "since": time.time()}).encode(), 0)
    except OSError:
        pass  # who holds it is for people; the flock itself is what serialises


@contextlib.contextmanager
def apply_lock(path: Path, wait: float = DEFAULT_WAIT, what: str = "an apply"):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    started = time.monotonic()
    deadline = started + wait
    said = False
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                now = time.monotonic()
                if now >= deadline:
                    raise LockTimeout(f"waited {wait:g} s for the apply lock {path}, held by {holder(fd)}; "
                                      "nothing was changed") from None
                if not said and now - started >= SAY_WAITING_AFTER:
                    said = True
                    message = (f"{what}: waiting for the apply lock, held by {holder(fd)} "
                               f"(giving up after {wait:g} s)")
                    _say(message)
                time.sleep(0.05)
        held = Held(waited=time.monotonic() - started)
        _write_holder(fd, what)
        try:
            yield held
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # closing releases the flock, also when the process is killed


def _say(message: str) -> None:
    from vragent.shell import log

    log.get().info("%s", message)
    with contextlib.suppress(OSError, ValueError):
        print(f"note: {message}", file=sys.stderr, flush=True)
