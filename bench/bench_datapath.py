"""New TCP connections per second through a port forward, by how many forwards its IP has.

In the lab (a router replica in namespaces), one public IP holds --forwards forwards to vm1
and the one measured is its last (highest port); another public IP holds one forward
alone. A client on the upstream host opens and closes connections as fast as it can for
--seconds to each in turn, --rounds times interleaved (so a busy moment of the shared
machine weighs on both); vm1 accepts and closes. Prints the median rate of each and
their ratio (target: >= 0.9).

    sudo .venv/bin/python bench/bench_datapath.py [--forwards 5000] [--rounds 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vragent.lab import sample  # noqa: E402
from vragent.lab.agent import RouterAgent  # noqa: E402
from vragent.lab.topology import EXTRA_PUBLIC_IPS, Lab, VM1_IP  # noqa: E402

SERVER = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(4096)
print("ready", flush=True)
while True:
    c, _ = s.accept(); c.close()
"""

CLIENT = """
import socket, sys, time, struct
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
linger = struct.pack("ii", 1, 0)  # RST on close: no TIME_WAIT pile-up on the client
done, deadline = 0, time.monotonic() + seconds
while time.monotonic() < deadline:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
    s.settimeout(1)
    s.connect((host, port)); s.close(); done += 1
print(done / seconds)
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forwards", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    many_ip, lone_ip = EXTRA_PUBLIC_IPS[0], EXTRA_PUBLIC_IPS[1]
    last_port = 10000 + args.forwards - 1
    with Lab(f"vrdp{os.getpid() % 10000}") as lab:
        agent = RouterAgent(lab, Path(tempfile.mkdtemp(prefix="vragent-bench-dp-")) / "root")
        forwards = [sample.forward_rule(many_ip, 10000 + n, VM1_IP, 9000) for n in range(args.forwards)]
        forwards.append(sample.forward_rule(lone_ip, 10000, VM1_IP, 9000))
        firewall = sample.firewall_rules(sample.firewall_rule(1, ports=(10000, 10000 + args.forwards), public_ip=many_ip),
                                         sample.firewall_rule(2, ports=(10000, 10000), public_ip=lone_ip))
        applied = agent.apply(sample.cmdline(), sample.ips(), sample.egress_allowed(),
                              sample.forward_rules(*forwards), firewall)
        assert applied.returncode == 0, applied.errors
        nat = lab.run("vr", ["iptables-save", "-t", "nat"]).stdout
        walked_chain = max((line.split()[1] for line in nat.splitlines() if line.startswith(f"-A vr-pf-{many_ip}")),
                           key=lambda chain: nat.count(f"-A {chain} "))
        server = subprocess.Popen(["ip", "netns", "exec", lab.ns("vm1"), sys.executable, "-c", SERVER, "9000"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout.readline().strip() == "ready"
            rates: dict[str, list[float]] = {"lone forward": [], f"last of {args.forwards:,}": []}
            for _ in range(args.rounds):
                for label, (ip, port) in zip(rates, ((lone_ip, 10000), (many_ip, last_port))):
                    out = lab.run("up", [sys.executable, "-c", CLIENT, ip, str(port), str(args.seconds)],
                                  timeout=args.seconds + 30).stdout
                    rates[label].append(float(out))
        finally:
            server.kill()
            server.wait()
    lone, many = (statistics.median(values) for values in rates.values())
    print(f"new TCP connections/s through a port forward; medians of {args.rounds} interleaved rounds of "
          f"{args.seconds:.0f} s; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    print(f"  the longest chain on the way: {walked_chain} ({nat.count(f'-A {walked_chain} ')} rules)")
    for label, values in rates.items():
        print(f"  {label:<22}{statistics.median(values):>10.0f}/s   rounds: {json.dumps([round(v) for v in values])}")
    print(f"  ratio {many / lone:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
