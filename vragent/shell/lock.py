"""One lock serialises applies; a waiting push gives up after a bounded time."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from vragent.errors import LockTimeout

DEFAULT_WAIT = 120.0  # the management server's own per-script timeout is 10 minutes


@contextlib.contextmanager
def apply_lock(path: Path, wait: float = DEFAULT_WAIT):
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                if time.monotonic() >= deadline:
                    raise LockTimeout(f"another apply held {path} for more than {wait:g} s; "
                                      "nothing was changed") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the flock, also when the process is killed
