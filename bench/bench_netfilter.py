"""Netfilter at scale: one push with 5,000 port-forwarding and 2,000 firewall rules.

Prints, side by side in one run: the cold apply, the no-op re-apply, adding one rule,
and the floor (a bare iptables-restore of the same rendered ruleset into an empty
namespace), with ratios and the agent's peak RSS. Each case is the median of --repeat
fresh routers, and the floor the median of as many bare restores, measured in turn.

    sudo .venv/bin/python bench/bench_netfilter.py [--forwards 5000] [--firewall 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import router_namespace, run_agent, scratch_dir, sh, write_json  # noqa: E402
from tests.unit import pushes as p  # noqa: E402
from vragent.lab import sample  # noqa: E402

PUBLIC_IPS = [f"198.51.100.{n}" for n in range(20, 30)]


def build_pushes(directory: Path, forwards: int, firewall: int) -> tuple[list[Path], Path]:
    per_ip = -(-forwards // len(PUBLIC_IPS))
    cmdline = p.cmdline(eth0ip="10.0.0.1", eth0mask="255.255.0.0", guestgw="10.0.0.1")
    ips = p.ips(p.public_ip("198.51.100.10", source_nat=True, first=True), *[p.public_ip(ip) for ip in PUBLIC_IPS])
    rules = []
    for index in range(forwards):
        ip = PUBLIC_IPS[index // per_ip]
        port = 10000 + index % per_ip
        vm = f"10.0.{index // 250}.{index % 250 + 2}"
        rules.append(p.forward(ip, f"{port}:{port}", vm, "22:22"))
    fw = [p.ingress(100000 + index, PUBLIC_IPS[index % len(PUBLIC_IPS)], ports=(10000 + index, 10000 + index),
                    cidrs=(f"203.0.{index // 256 % 256}.{index % 256}/32",)) for index in range(firewall)]
    base = [write_json(directory, "cmd_line.json", cmdline), write_json(directory, "ip_associations.json.b1", ips)]
    # The rules arrive as one push: a VR-*.cfg batch, as the management server sends them on a restart.
    batch = directory / "VR-bench.cfg"
    batch.write_text(sample.batch_cfg([("forwarding_rules.json.b1", p.forwards(*rules)),
                                       ("firewall_rules.json.b1", p.firewall(*fw))]))
    return base, batch


def median_run(runs: list) -> object:
    """The run of median wall time (its RSS and phases go with it)."""
    return sorted(runs, key=lambda run: run.seconds)[len(runs) // 2]


def one_router(work: Path, index: int, base: list[Path], batch: Path, one_more: Path):
    """A fresh router: cold apply, no-op re-apply, one more rule. Also returns the rendered ruleset."""
    with router_namespace(f"vrbench{index}") as ns:
        root = work / f"root{index}"
        run_agent(ns, root, "apply", "--json", *map(str, base))  # the router's NICs and public IPs
        cold = run_agent(ns, root, "apply", "--json", str(batch))
        noop = run_agent(ns, root, "apply", "--json", str(batch))
        add = run_agent(ns, root, "apply", "--json", str(one_more))
        rendered = sh("ip", "netns", "exec", ns, sys.executable, "-m", "vragent", "--root", str(root), "render")
    return cold, noop, add, rendered


def floor_once(rendered: str, index: int) -> float:
    with router_namespace(f"vrfloor{index}") as ns:
        started = time.perf_counter()
        sh("ip", "netns", "exec", ns, "iptables-restore", "-w", input=rendered)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--forwards", type=int, default=5000)
    parser.add_argument("--firewall", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3,
                        help="fresh routers (and floors) measured; the median of each case is shown")
    args = parser.parse_args()
    work = scratch_dir("vragent-bench-")
    base, batch = build_pushes(work, args.forwards, args.firewall)
    one_more = write_json(work, "forwarding_rules.json.b2", p.forwards(
        p.forward(PUBLIC_IPS[0], "9999:9999", "10.0.0.2", "80:80")))

    # Routers and floors alternate, so a busier moment of the machine weighs on both.
    routers, floors = [], []
    for index in range(args.repeat):
        routers.append(one_router(work, index, base, batch, one_more))
        floors.append(floor_once(routers[-1][3], index))
    cold, noop, add = (median_run([router[case] for router in routers]) for case in range(3))
    rendered = routers[0][3]
    rule_count = sum(1 for line in rendered.splitlines() if line.startswith("-A"))
    floor = sorted(floors)[len(floors) // 2]

    iptables_writes = sum(1 for s in noop.result["steps"] if s["kind"] == "iptables")
    print(f"netfilter benchmark: {args.forwards} port forwards + {args.firewall} firewall rules "
          f"-> {rule_count} iptables rules; median of {args.repeat} fresh routers "
          f"(floors {', '.join(f'{f:.3f}' for f in floors)} s)")
    print(f"{'case':<34}{'seconds':>9}{'x floor':>9}{'peak RSS MB':>13}{'forks':>7}")
    for label, run in (("cold apply", cold), ("no-op re-apply", noop), ("add one port forward", add)):
        print(f"{label:<34}{run.seconds:>9.3f}{run.seconds / floor:>9.2f}{run.peak_rss_kb / 1024:>13.1f}"
              f"{run.result.get('forks', 0):>7}")
    print(f"{'floor: bare iptables-restore':<34}{floor:>9.3f}{1.0:>9.2f}")
    print("inside the agent (ms; the rest of each run is interpreter start, imports and reading the push):")
    for label, run in (("cold apply", cold), ("no-op re-apply", noop), ("add one port forward", add)):
        phases = run.result.get("phases_ms", {})
        print(f"  {label:<32}" + "  ".join(f"{name} {ms:.0f}" for name, ms in phases.items() if ms >= 0.5))
    print(f"targets: cold <= 2x floor ({cold.seconds / floor:.2f}x); one added rule < 0.300 s "
          f"({add.seconds:.3f}); no-op < 0.150 s ({noop.seconds:.3f}) with 0 iptables writes ({iptables_writes})")


if __name__ == "__main__":
    main()
