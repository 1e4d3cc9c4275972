"""Helpers shared by the benchmarks: a scratch router namespace and timed agent runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def sh(*argv: str, input: str | None = None) -> str:
    return subprocess.run(argv, input=input, check=True, capture_output=True, text=True).stdout


@contextmanager
def router_namespace(name: str = "vrbench"):
    """A namespace with CloudStack's NIC names (veth to a peer namespace), removed afterwards."""
    peer = f"{name}-p"
    for ns in (name, peer):
        subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        sh("ip", "netns", "add", ns)
    try:
        for index in range(3):
            sh("ip", "-n", name, "link", "add", f"eth{index}", "type", "veth", "peer", "name", f"p{index}",
               "netns", peer)
            sh("ip", "-n", name, "link", "set", f"eth{index}", "up")
        sh("ip", "-n", name, "link", "set", "lo", "up")
        yield name
    finally:
        for ns in (name, peer):
            stop_processes_in(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def stop_processes_in(ns: str) -> None:
    """Daemons the agent started in the namespace (dnsmasq, ...) would outlive it: stop them by PID."""
    import signal

    pids = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.monotonic() + 5
    while pids and time.monotonic() < deadline:
        pids = [p for p in pids if os.path.exists(f"/proc/{p}")]
        time.sleep(0.05)
    for pid in pids:
        try:
            os.kill(int(pid), signal.SIGKILL)
        except (ProcessLookupError, ValueError):
            pass


@dataclass
class Run:
    seconds: float
    peak_rss_kb: int
    result: dict


def run_agent(ns: str, root: Path, *args: str, check: bool = True) -> Run:
    """Run the agent in the namespace; wall time and the process's peak RSS (wait4)."""
    from vragent.shell import guard
    from vragent.paths import Paths

    guard.mark(Paths.from_root(root), ns)  # this root configures that namespace (vragent.shell.guard)
    argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "vragent", "--root", str(root), *args]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=REPO)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        text = out.read()
        if check and proc.returncode != 0:
            raise SystemExit(f"agent failed ({proc.returncode}): {err.read()}\n{text[-2000:]}")
    result = json.loads(text) if text.strip().startswith("{") else {}
    return Run(seconds, usage.ru_maxrss, result)


def timed(argv: list[str], input_path: str | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True)
    return time.perf_counter() - started


def write_json(directory: Path, name: str, payload: dict) -> Path:
    path = directory / name
    path.write_text(json.dumps(payload))
    return path


def scratch_dir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))
