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
    peak_rss_kb: int  # the agent's own (VmHWM), never the bench's (see bench/agent_peak.py)
    result: dict


AGENT_PEAK = REPO / "bench" / "agent_peak.py"


def _mark(root: Path, ns: str) -> None:
    """This root configures that namespace: the agent may act on it (vragent.shell.guard)."""
    from vragent.paths import Paths
    from vragent.shell import guard

    guard.mark(Paths.from_root(root), ns)


def run_agent(ns: str, root: Path, *args: str, check: bool = True) -> Run:
    """Run `vragent --root ROOT ARGS` in the namespace: wall time and the agent's peak RSS."""
    _mark(root, ns)
    return _run(ns, "cli", ["--root", str(root), *args], check=check)


def run_shim(ns: str, root: Path, shim: str, *args: str, check: bool = True) -> Run:
    """Run a shim (update_config or vr_cfg) as the management server does, with VRAGENT_ROOT."""
    _mark(root, ns)
    return _run(ns, shim, list(args), check=check, env={"VRAGENT_ROOT": str(root)})


def run_shim_file(ns: str, root: Path, shim: str, *args: str) -> float:
    """Run the shim file itself (packaging/update_config.py ...) as the management server
    does: its wall time. It hands the push to a resident agent when one listens."""
    _mark(root, ns)
    env = {**os.environ, "VRAGENT_ROOT": str(root), "PYTHONPATH": str(REPO)}
    started = time.perf_counter()
    done = subprocess.run(["ip", "netns", "exec", ns, sys.executable, str(REPO / "packaging" / shim), *args],
                          env=env, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{shim} failed ({done.returncode}): {done.stderr}")
    return seconds


@contextmanager
def resident_agent(ns: str, root: Path):
    """`vragent serve` in the namespace for the duration, stopped by its PID."""
    _mark(root, ns)
    process = subprocess.Popen(["ip", "netns", "exec", ns, sys.executable, "-m", "vragent", "--root", str(root),
                                "serve"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sock = root / "run/vragent/agent.sock"
    deadline = time.monotonic() + 60
    while not sock.exists():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("the resident agent did not start")
        time.sleep(0.05)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def _run(ns: str, entry: str, args: list[str], check: bool, env: dict | None = None) -> Run:
    with tempfile.NamedTemporaryFile("r") as peak, tempfile.TemporaryFile("w+") as out, \
            tempfile.TemporaryFile("w+") as err:
        argv = ["ip", "netns", "exec", ns, sys.executable, str(AGENT_PEAK), peak.name, entry, *args]
        started = time.perf_counter()
        proc = subprocess.run(argv, stdout=out, stderr=err, cwd=REPO, env={**os.environ, **(env or {})})
        seconds = time.perf_counter() - started
        out.seek(0), err.seek(0)
        text = out.read()
        if check and proc.returncode != 0:
            raise SystemExit(f"agent failed ({proc.returncode}): {err.read()}\n{text[-2000:]}")
        peak_kb = int(peak.read() or 0)
    result = json.loads(text) if text.strip().startswith("{") else {}
    return Run(seconds, peak_kb, result)


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
