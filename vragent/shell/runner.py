"""The only place that starts processes: argv lists, never a shell, always a timeout."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import dataclass

DEFAULT_TIMEOUT = 60.0


class CommandFailed(Exception):
    def __init__(self, argv: list[str], returncode: int | None, output: str):
        self.argv, self.returncode, self.output = argv, returncode, output.strip()
        status = "timed out" if returncode is None else f"exited {returncode}"
        super().__init__(f"{' '.join(argv)} {status}: {self.output[-2000:]}")


@dataclass
class Completed:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


# Counted so benchmarks and tests can report how many processes an apply forked
# (candidates are checked from several threads at once, hence the lock).
forks = 0
_forks_lock = threading.Lock()


def _count_fork() -> None:
    global forks
    with _forks_lock:
        forks += 1


def run(argv: list[str], *, input: str | None = None, stdin_fd: int | None = None,
        timeout: float = DEFAULT_TIMEOUT, check: bool = True, ok_codes: tuple[int, ...] = (0,)) -> Completed:
    """Run argv to completion; `input` is written to its stdin, or `stdin_fd` is its stdin."""
    _count_fork()
    try:
        if stdin_fd is not None:
            proc = subprocess.run(argv, stdin=stdin_fd, capture_output=True, text=True, timeout=timeout)
        else:
            proc = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CommandFailed(argv, None, str(exc.stderr or "")) from None
    except FileNotFoundError:
        raise CommandFailed(argv, 127, f"{argv[0]}: command not found") from None
    if check and proc.returncode not in ok_codes:
        raise CommandFailed(argv, proc.returncode, proc.stderr or proc.stdout)
    return Completed(argv, proc.returncode, proc.stdout, proc.stderr)


def spawn(argv: list[str]) -> None:
    """Fire and forget (gratuitous ARP): the child is reaped by init when we exit."""
    _count_fork()
    try:
        subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    except FileNotFoundError:
        pass
