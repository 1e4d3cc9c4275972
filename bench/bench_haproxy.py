"""HAProxy: time from push to the new configuration serving, and failed requests during reloads.

In a lab (router, two VMs answering their names, an upstream host), for 1 and 200 load
balancer rules: a 4-thread HTTP load from upstream runs while the first rule's backend
is switched between vm1 and vm2 `--changes` times. A prober on upstream notes when the
new backend first answers. Printed side by side:

- vragent apply: push (process start) -> new configuration serving; failed requests;
- floor: the same file change with a bare SIGUSR2 to the master (what any reload costs);
- restart: the same changes with a stop and start (what the incumbent falls back to).

    sudo .venv/bin/python bench/bench_haproxy.py [--rules 1 200] [--changes 10]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vragent.shell import files  # noqa: E402
from vragent.lab import sample, sample_lb as lb  # noqa: E402
from vragent.lab.agent import RouterAgent  # noqa: E402
from vragent.lab.lbtraffic import HttpLoad, HttpNameServer  # noqa: E402
from vragent.lab.topology import EXTRA_PUBLIC_IPS, Lab, VM1_IP, VM2_IP  # noqa: E402
from vragent.lab.traffic import READY_TIMEOUT, _LineReader, _python  # noqa: E402
from vragent.paths import Paths  # noqa: E402
from vragent.subsystems.lb import render as layout  # noqa: E402
from vragent.shell.services import DirectBackend  # noqa: E402
from vragent.subsystems.lb import service  # noqa: E402

LB_IP = EXTRA_PUBLIC_IPS[0]
FIRST_PORT = 10000
BOTH = ((VM1_IP, 8080), (VM2_IP, 8080))

# GETs host:port in a loop; after "want NAME" on stdin, prints the CLOCK_MONOTONIC time
# (system-wide, so comparable with the bench's) of the first answer that is NAME.
_PROBER = r"""
import http.client, sys, threading, time
host, port = sys.argv[1], int(sys.argv[2])
state = {"want": None}
lock = threading.Lock()

def read():
    for line in sys.stdin:
        with lock:
            state["want"] = line.split(None, 1)[1].strip()

threading.Thread(target=read, daemon=True).start()
print("ready", flush=True)
while True:
    with lock:
        want = state["want"]
    if want is None:
        time.sleep(0.001)
        continue
    try:
        conn = http.client.HTTPConnection(host, port, timeout=2)
        conn.request("GET", "/")
        body = conn.getresponse().read().decode()
        conn.close()
    except Exception:  # reset, closed without a response, timed out: not the new one yet
        continue
    if body == want:
        seen = time.monotonic()
        with lock:
            if state["want"] == want:
                state["want"] = None
        print(seen, flush=True)
"""


class Prober:
    def __init__(self, lab: Lab, port: int) -> None:
        self.process = lab.popen("up", _python(_PROBER, LB_IP, port), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.reader = _LineReader(self.process)
        if self.reader.readline(READY_TIMEOUT) != "ready":
            raise RuntimeError("prober did not start")

    def want(self, name: str) -> None:
        self.process.stdin.write(f"want {name}\n".encode())
        self.process.stdin.flush()

    def seen(self, timeout: float = 30.0) -> float:
        line = self.reader.readline(timeout)
        if line is None:
            raise RuntimeError("the new backend never answered")
        return float(line)


def push(rules: int, first: str) -> dict:
    target = [(VM1_IP if first == "vm1" else VM2_IP, 8080)]
    listeners = [lb.lb_rule(LB_IP, FIRST_PORT, target)]
    listeners += [lb.lb_rule(LB_IP, FIRST_PORT + n, BOTH) for n in range(1, rules)]
    return lb.loadbalancer(*listeners)


def other(name: str) -> str:
    return "vm2" if name == "vm1" else "vm1"


def measure(lab: Lab, router: RouterAgent, rules: int, changes: int) -> dict[str, dict]:
    results: dict[str, dict] = {}
    paths = Paths(router.root)
    prober = Prober(lab, FIRST_PORT)

    # vragent: the whole push, from the process start.
    name = "vm1"
    pushed = [router.write_push(push(rules, n), f"lb-{n}-{rules}.json") for n in ("vm1", "vm2")]
    router.apply(pushed[0])
    latencies, apply_times = [], []
    with HttpLoad(lab, "up", LB_IP, FIRST_PORT, minimum=0) as load:
        for _ in range(changes):
            name = other(name)
            prober.want(name)
            started = time.monotonic()
            result = router.apply(pushed[0 if name == "vm1" else 1])
            apply_times.append(time.monotonic() - started)
            if result.returncode != 0:
                raise SystemExit(f"apply failed: {result.errors}")
            latencies.append(prober.seen() - started)
        totals = load.finish()
    results["vragent apply (reload)"] = {"latency": latencies, "apply": apply_times, **totals}

    # Floor: the file swapped directly, SIGUSR2 to the master.
    config = layout.config_path(paths)
    texts = {name: config.read_text()}
    router.apply(pushed[0 if other(name) == "vm1" else 1])
    texts[other(name)] = config.read_text()
    router.apply(pushed[0 if name == "vm1" else 1])  # `name` serves again
    backend = DirectBackend(paths)
    latencies = []
    with HttpLoad(lab, "up", LB_IP, FIRST_PORT, minimum=0) as load:
        for _ in range(changes):
            name = other(name)
            prober.want(name)
            started = time.monotonic()
            files.atomic_write(config, texts[name])
            os.kill(backend.running(service.SERVICE), signal.SIGUSR2)
            latencies.append(prober.seen() - started)
            # A SIGUSR2 while the master still re-executes is lost (subsystems/lb/service.py).
            while not service.master_ready(backend.running(service.SERVICE)):
                time.sleep(0.005)
        totals = load.finish()
    results["floor: file + SIGUSR2"] = {"latency": latencies, **totals}

    # Restart, as the incumbent does when its pid check fails (PR 3726, PR 4384).
    latencies = []
    with HttpLoad(lab, "up", LB_IP, FIRST_PORT, minimum=0) as load:
        for _ in range(changes):
            name = other(name)
            prober.want(name)
            started = time.monotonic()
            files.atomic_write(config, texts[name])
            backend.stop(service.SERVICE)
            lab.run("vr", service.argv(paths))
            latencies.append(prober.seen() - started)
        totals = load.finish()
    results["restart (stop + start)"] = {"latency": latencies, **totals}
    lab.terminate(prober.process)
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rules", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--changes", type=int, default=10)
    args = parser.parse_args()
    print(f"haproxy benchmark: {args.changes} backend switches per case under a 4-thread HTTP load from upstream")
    print(f"{'rules':>5}  {'case':<26}{'median s':>10}{'max s':>8}{'apply s':>9}{'requests':>10}{'failed':>8}")
    for rules in args.rules:
        lab = Lab(f"vrbl{os.getpid() % 10000}")
        root = Path(tempfile.mkdtemp(prefix="vragent-bench-lb-")) / "root"
        try:
            lab.up()
            router = RouterAgent(lab, root)
            opened = sample.firewall_rules(sample.firewall_rule(1, ports=(FIRST_PORT, FIRST_PORT + 999),
                                                                public_ip=LB_IP))
            router.apply(sample.cmdline(), sample.ips(), opened)
            with HttpNameServer(lab, "vm1", 8080), HttpNameServer(lab, "vm2", 8080):
                results = measure(lab, router, rules, args.changes)
        finally:
            lab.down()
            subprocess.run(["rm", "-rf", str(root.parent)], check=False)
        for case, r in results.items():
            apply = f"{statistics.median(r['apply']):>9.3f}" if "apply" in r else f"{'':>9}"
            print(f"{rules:>5}  {case:<26}{statistics.median(r['latency']):>10.3f}{max(r['latency']):>8.3f}"
                  f"{apply}{r['requests']:>10}{r['failures']:>8}")
            if r["failures"]:
                print(f"{'':>7}e.g. {r['errors'][0]}")


if __name__ == "__main__":
    main()
