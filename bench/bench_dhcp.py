"""VM mass start: 2,000 `dhcpentry` pushes one at a time, then the same entries as one batch.

Prints the total and per-push time and how dnsmasq was told: restarts (target 0) and
SIGHUPs. Targets: a single push under 150 ms, the batch under 3 s.

    sudo .venv/bin/python bench/bench_dhcp.py [--entries 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import router_namespace, run_agent, scratch_dir, write_json  # noqa: E402
from tests.unit import pushes as p  # noqa: E402
from vragent.lab import sample  # noqa: E402


def entry(index: int) -> dict:
    # 198.18.0.0/15 is the benchmarking range (RFC 2544).
    return {"type": "dhcpentry", "host_name": f"vm-{index:05d}", "mac_address": f"02:42:00:00:{index // 256:02x}:{index % 256:02x}",
            "ipv4_address": f"198.18.{index // 250}.{index % 250 + 2}", "default_entry": True, "remove": False}


def dnsmasq_pid(root: Path) -> int | None:
    try:
        return int((root / "run/vragent/dnsmasq.pid").read_text().split()[0])
    except (OSError, ValueError):
        return None


def service_actions(result: dict) -> list[str]:
    return [s["summary"].split(":")[1].split()[0] for s in result.get("steps", []) if s["kind"] == "service"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=2000)
    args = parser.parse_args()
    work = scratch_dir("vragent-bench-dhcp-")
    base = [write_json(work, "cmd_line.json", p.cmdline(eth0ip="198.18.0.1", eth0mask="255.254.0.0", guestgw="198.18.0.1")),
            write_json(work, "ip_associations.json.1", p.ips(p.public_ip("198.51.100.10", source_nat=True)))]
    entries = [entry(i) for i in range(args.entries)]

    with router_namespace("vrbenchd") as ns:
        root = work / "one-by-one"
        run_agent(ns, root, "apply", "--json", *map(str, base))
        first_pid = dnsmasq_pid(root)
        times, actions = [], []
        started = time.perf_counter()
        for index, payload in enumerate(entries):
            path = write_json(work, f"vm_dhcp_entry.json.{index}", payload)
            run = run_agent(ns, root, "apply", "--json", str(path))
            times.append(run.seconds)
            actions += service_actions(run.result)
            path.unlink()
        total = time.perf_counter() - started
        restarts_one = actions.count("restart") + (dnsmasq_pid(root) != first_pid)
        hups_one = actions.count("reload")

    with router_namespace("vrbenchd") as ns:
        root = work / "batch"
        run_agent(ns, root, "apply", "--json", *map(str, base))
        first_pid = dnsmasq_pid(root)
        batch = work / "VR-bench.cfg"
        batch.write_text(sample.batch_cfg([(f"vm_dhcp_entry.json.{i}", e) for i, e in enumerate(entries)]))
        run = run_agent(ns, root, "apply", "--json", str(batch))
        batch_actions = service_actions(run.result)
        restarts_batch = batch_actions.count("restart") + (dnsmasq_pid(root) != first_pid)
        noop = run_agent(ns, root, "apply", "--json", str(batch))

    print(f"dhcp benchmark: {args.entries} dhcpentry pushes")
    print(f"{'case':<30}{'total s':>9}{'per push ms':>13}{'p95 ms':>9}{'restarts':>10}{'SIGHUPs':>9}")
    p95 = sorted(times)[int(len(times) * 0.95) - 1]
    print(f"{'one push at a time':<30}{total:>9.2f}{statistics.mean(times) * 1000:>13.1f}{p95 * 1000:>9.1f}"
          f"{restarts_one:>10}{hups_one:>9}")
    print(f"{'one VR-*.cfg batch':<30}{run.seconds:>9.2f}{'':>13}{'':>9}{restarts_batch:>10}"
          f"{batch_actions.count('reload'):>9}")
    print(f"{'batch again (no-op)':<30}{noop.seconds:>9.2f}{'':>13}{'':>9}{0:>10}{len(service_actions(noop.result)):>9}")
    print(f"targets: batch < 3 s ({run.seconds:.2f}); single push < 150 ms (mean {statistics.mean(times) * 1000:.0f}); "
          f"0 restarts ({restarts_one + restarts_batch}); peak RSS batch {run.peak_rss_kb / 1024:.1f} MB")


if __name__ == "__main__":
    main()
