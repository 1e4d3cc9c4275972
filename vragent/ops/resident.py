"""The resident agent: the shims hand a push to an agent that has already started.

A push through `update_config.py` used to cost an interpreter start and ~150-190 ms of
imports before the agent did ~35 ms of work (bench/bench_small_push.py). `vragent serve`
imports everything once and listens on a local socket, `run/vragent/agent.sock` under the
root (mode 0600, root's peers only). For each push it forks: the child, with every module
already imported, runs exactly what the shim would have run (shims.update_config, vr_cfg
or configure) and answers with its exit code and output; the parent waits for it before
taking the next push. So
- pushes stay serialised (and the apply lock still orders them with any `vragent apply`);
- a push never sees anything a previous push left in memory, and the resident process does
  not keep the peak memory of a 20,000-entry batch (the child's pages go with it);
- a child that dies mid-push (a defect, a kill) closes the connection without an answer:
  the shim then runs the push itself, from the persisted state, as it always did. An apply
  is one transaction that writes the state only after its commit was verified, so what the
  dead child had not committed is simply done again (a push it had applied and archived is
  "already processed": exit 0).
- a resident agent whose code changed on disk (an upgrade) answers "not me" and exits; the
  shim runs the push itself and the service manager starts the new code.

The client half (`hand_over`) imports nothing but the interpreter's own _socket (no json,
not even socket.py: ~8 ms of a shim's start), so a shim that finds no agent listening costs
nothing but a failed connect(). The request is NUL-separated strings (program, root, cwd,
argv: none can hold a NUL); the answer is `code NUL len(stdout) NUL` then stdout and stderr.
"""

from __future__ import annotations

import os
import sys

SOCKET = "run/vragent/agent.sock"
PROGRAMS = ("update_config", "vr_cfg", "configure")
_MAX_REQUEST = 1 << 16


def socket_path(root: str | None = None) -> str:
    """The socket under the root the shims use (VRAGENT_ROOT, else /), as vragent.paths does."""
    chosen = root if root is not None else os.environ.get("VRAGENT_ROOT") or "/"
    return os.path.join(os.path.realpath(chosen), SOCKET)


def _receive_all(connection) -> bytes:
    chunks = []
    while True:
        chunk = connection.recv(1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


# -- the shim's side ------------------------------------------------------------------

def hand_over(program: str, argv: list[str]) -> int | None:
    """Have the resident agent run `program argv`; its exit code, with its output written
    to ours, or None when there is no agent to do it (the caller then runs it itself)."""
    import _socket

    root = os.path.realpath(os.environ.get("VRAGENT_ROOT") or "/")
    request = "\0".join([program, root, os.getcwd(), *argv]).encode("utf-8", "surrogateescape")
    try:
        connection = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        connection.connect(socket_path(root))
        connection.sendall(request)
        connection.shutdown(_socket.SHUT_WR)
        answer = _receive_all(connection)
    except OSError:
        return None
    finally:
        connection.close()
    try:
        code, length, rest = answer.split(b"\0", 2)
        code, length = int(code), int(length)
    except ValueError:
        return None  # no answer (the agent died or declined): nothing was reported done
    sys.stdout.write(rest[:length].decode("utf-8", "replace"))
    sys.stderr.write(rest[length:].decode("utf-8", "replace"))
    return code


# -- the agent's side -----------------------------------------------------------------

def serve(paths, once: bool = False) -> int:
    """Answer pushes on the socket until SIGTERM (between pushes) or, with `once`, after one."""
    import gc
    import signal
    import socket

    from vragent import shims  # everything a push needs, imported once, here
    from vragent.shell import log, memo

    log.setup(paths.log)
    _warm_up(paths)
    logger = log.get()
    identity = memo._code_identity()
    path = str(paths.under(SOCKET))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    previous_mask = os.umask(0o177)
    try:
        listener.bind(path)
    finally:
        os.umask(previous_mask)
    listener.listen(64)
    signal.signal(signal.SIGTERM, _stop)
    gc.freeze()  # what is imported now stays shared with every forked child, untouched
    logger.info("resident agent listening on %s", path)
    try:
        while True:
            connection, _ = listener.accept()
            with connection:
                if memo._code_identity() != identity:
                    logger.info("resident agent: its code changed on disk; leaving the push to the shim")
                    return 0  # the connection closes unanswered: the shim runs the push itself
                _serve_one(connection, paths, shims)
            if once:
                return 0
    finally:
        listener.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


def _warm_up(paths) -> None:
    """Import what a push imports only when it needs it (each CloudStack type's handler, the
    apply record, jinja2 and the templates), so no child pays for it. Reads, writes nothing."""
    import importlib

    from vragent import engine, templating
    from vragent.pipeline import intake

    importlib.import_module("vragent.shell.history")  # engine.apply imports it to record each apply

    for kind in intake.SUPPORTED_TYPES:
        intake.handler(kind)
    try:
        templating.environment()
        # A dry run converges nothing and writes nothing, but walks every phase up to the
        # plan: what it imports, compiles and caches, every child starts with.
        engine.apply(paths, [], dry_run=True)
    except Exception as exc:  # noqa: BLE001 - a warm-up only: the push itself reports problems
        log_warning(f"resident agent: warm-up render skipped ({exc!r})")


def log_warning(message: str) -> None:
    from vragent.shell import log

    log.get().warning(message)


def _stop(*_) -> None:
    raise SystemExit(0)


def _peer_allowed(connection) -> bool:
    import socket
    import struct

    credentials = connection.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _, uid, _ = struct.unpack("3i", credentials)
    return uid in (0, os.getuid())


def _serve_one(connection, paths, shims) -> None:
    """One push, in a forked child; the parent waits for it (pushes stay one at a time)."""
    import signal

    from vragent.shell import log

    if not _peer_allowed(connection):
        return
    request = _read_request(connection, paths)
    if request is None:
        return  # closed unanswered: the shim runs it itself, and reports its own errors
    pid = os.fork()
    if pid == 0:
        # The child: SIGTERM kills it like any apply (the transaction is crash-safe).
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        import gc

        gc.disable()  # one short push, as in a shim's own process
        code = 1
        try:
            code = _run_request(connection, request, paths, shims)
        finally:
            os._exit(code)
    # The parent: a SIGTERM now waits until the child is done.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        _, status = os.waitpid(pid, 0)
    finally:
        signal.signal(signal.SIGTERM, _stop)
    outcome = (f"exit {os.waitstatus_to_exitcode(status)}" if os.WIFEXITED(status)
               else f"killed by signal {os.WTERMSIG(status)}, left to the shim")
    log.get().info("resident agent: %s %s (pid %d): %s", request["program"], " ".join(request["argv"]), pid, outcome)


def _read_request(connection, paths) -> dict | None:
    data = _receive_all(connection)
    if len(data) > _MAX_REQUEST:
        return None
    parts = data.decode("utf-8", "surrogateescape").split("\0")
    if len(parts) < 3:
        return None
    program, root, cwd, argv = parts[0], parts[1], parts[2], parts[3:]
    if program not in PROGRAMS or root != str(paths.root):
        return None
    return {"program": program, "cwd": cwd, "argv": argv}


def _run_request(connection, request: dict, paths, shims) -> int:
    import contextlib
    import io

    try:
        os.chdir(request["cwd"])  # vr_cfg.sh -c names its file relative to the caller
    except OSError:
        pass
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = getattr(shims, request["program"])(request["argv"], paths)
    printed = out.getvalue().encode("utf-8", "replace")
    connection.sendall(b"%d\0%d\0" % (code, len(printed)) + printed + err.getvalue().encode("utf-8", "replace"))
    return code
