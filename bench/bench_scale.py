"""Push cost against router size: issue 18's table for vragent, growth exponents and ratios.

For each size N (default 0, 1,000, 5,000, 10,000, 20,000) a fresh router (a namespace with
CloudStack's NIC names) is given, as cold batches the management server would send on a
restart: N dhcpentry files (one VR-*.cfg), N vmdata files (one VR-*.cfg), and N port
forwards with N ingress firewall rules (one forwarding_rules file, one firewall_rules file,
one VR-*.cfg). On that router, each small push is made --repeat times through the shim the
management server calls (`update_config.py NAME`): one new DHCP entry, one new VM's data,
one added firewall rule, one added forward, and a no-op (the last DHCP entry again); with
--resident the shim hands them to `vragent serve`. The floor is a bare iptables-restore of the rendered ruleset into an empty namespace.

Times are medians, in seconds, wall clock of the whole process (interpreter start
included). Peak RSS is the agent's own (VmHWM, bench/agent_peak.py), the largest of the
cold batches at that size. Growth exponents are fitted (least squares of log t against log N)
over the sizes > 0, on the time above the same case at N = 0 (so a fixed cost does not
flatter them), where that time is at least a quarter of the fixed cost; any batch above
1.2 is flagged.

    sudo .venv/bin/python bench/bench_scale.py [--sizes 0,1000,5000,10000,20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (resident_agent, router_namespace, run_agent, run_shim_file, scratch_dir, sh,  # noqa: E402
                          write_json)
from tests.unit import pushes as p  # noqa: E402
from vragent.lab import sample  # noqa: E402

PUBLIC_IPS = [f"198.51.100.{n}" for n in range(20, 30)]
EXPONENT_LIMIT = 1.2


def vm_ip(index: int) -> str:
    # 198.18.0.0/15 is the benchmarking range (RFC 2544): room for 20,000 VMs and more.
    return f"198.18.{index // 250}.{index % 250 + 2}"


def dhcp_entry(index: int) -> dict:
    return {"type": "dhcpentry", "host_name": f"vm-{index:05d}", "ipv4_address": vm_ip(index),
            "mac_address": f"02:42:00:{index // 65536:02x}:{index // 256 % 256:02x}:{index % 256:02x}",
            "default_entry": True, "remove": False, "default_gateway": "198.18.0.1"}


def vm_data(index: int) -> dict:
    return {"type": "vmdata", "vm_ip_address": vm_ip(index),
            "vm_metadata": [["userdata", "user-data", "I2Nsb3VkLWNvbmZpZwo="],
                            ["metadata", "instance-id", f"i-{index}"],
                            ["metadata", "local-hostname", f"vm-{index:05d}"]]}


def forward(index: int, per_ip: int) -> dict:
    port = 10000 + index % per_ip
    return p.forward(PUBLIC_IPS[index // per_ip], f"{port}:{port}", vm_ip(index), "22:22")


def firewall_rule(index: int, per_ip: int) -> dict:
    port = 10000 + index % per_ip
    return p.ingress(100000 + index, PUBLIC_IPS[index // per_ip], ports=(port, port),
                     cidrs=(f"203.0.{index // 256 % 256}.{index % 256}/32",))


def base_pushes(work: Path) -> list[Path]:
    cmdline = p.cmdline(eth0ip="198.18.0.1", eth0mask="255.254.0.0", guestgw="198.18.0.1")
    ips = p.ips(p.public_ip("198.51.100.10", source_nat=True, first=True), *[p.public_ip(ip) for ip in PUBLIC_IPS])
    return [write_json(work, "cmd_line.json", cmdline), write_json(work, "ip_associations.json.b1", ips)]


def batches(work: Path, size: int) -> dict[str, Path]:
    per_ip = max(1, -(-size // len(PUBLIC_IPS)))
    made = {}
    for label, items in (
            ("batch: N dhcpentry", [(f"vm_dhcp_entry.json.{i}", dhcp_entry(i)) for i in range(size)]),
            ("batch: N vmdata", [(f"vm_metadata.json.{i}", vm_data(i)) for i in range(size)]),
            ("batch: N forwards + N firewall", [
                ("forwarding_rules.json.b1", p.forwards(*[forward(i, per_ip) for i in range(size)])),
                ("firewall_rules.json.b1", p.firewall(*[firewall_rule(i, per_ip) for i in range(size)]))])):
        path = work / f"VR-{len(made)}-{size}.cfg"
        path.write_text(sample.batch_cfg(items))
        made[label] = path
    return made


def small_pushes(size: int, round_: int) -> dict[str, tuple[str, dict]]:
    """The pushes of one round on a router of `size`: new names each round (a fresh VM)."""
    vm = size + 1 + round_
    extra_port = 9000 + round_
    return {
        "one DHCP push": (f"vm_dhcp_entry.json.n{round_}", dhcp_entry(vm)),
        "one vmdata push": (f"vm_metadata.json.n{round_}", vm_data(vm)),
        "one added firewall rule": (f"firewall_rules.json.n{round_}", p.firewall(p.ingress(
            900000 + round_, PUBLIC_IPS[0], ports=(extra_port, extra_port), cidrs=("203.0.113.0/24",)))),
        "one added forward": (f"forwarding_rules.json.n{round_}", p.forwards(
            p.forward(PUBLIC_IPS[0], f"{extra_port}:{extra_port}", vm_ip(0), "80:80"))),
        "no-op (the DHCP push again)": (f"vm_dhcp_entry.json.o{round_}", dhcp_entry(size + 1)),
    }


def push_through_shim(ns: str, root: Path, name: str, payload: dict) -> float:
    cache = root / "var/cache/cloud"
    cache.mkdir(parents=True, exist_ok=True)
    write_json(cache, name, payload)
    return run_shim_file(ns, root, "update_config.py", name)


def floor_of(root: Path, ns_name: str, ns: str) -> float:
    rendered = sh("ip", "netns", "exec", ns, sys.executable, "-m", "vragent", "--root", str(root), "render")
    with router_namespace(ns_name) as empty:
        started = time.perf_counter()
        sh("ip", "netns", "exec", empty, "iptables-restore", "-w", input=rendered)
        return time.perf_counter() - started


def one_size(work: Path, size: int, repeat: int, resident: bool) -> dict[str, tuple[float, int]]:
    """case -> (median seconds, peak RSS kB) on a fresh router holding `size` of everything."""
    measured: dict[str, tuple[float, int]] = {}
    files = batches(work, size)
    with router_namespace(f"vrscale{os.getpid() % 10000}") as ns:
        root = work / f"root-{size}"
        run_agent(ns, root, "apply", *map(str, base_pushes(work)))
        for label, path in files.items():
            run = run_agent(ns, root, "apply", str(path))
            measured[label] = (run.seconds, run.peak_rss_kb)
        times: dict[str, list[float]] = {}
        with resident_agent(ns, root) if resident else contextlib.nullcontext():
            for round_ in range(repeat):
                # Interleaved: a busy moment of the machine weighs on every case alike.
                for label, (name, payload) in small_pushes(size, round_).items():
                    times.setdefault(label, []).append(push_through_shim(ns, root, name, payload))
        for label, values in times.items():
            measured[label] = (statistics.median(values), 0)
        floors = [floor_of(root, f"vrfloor{os.getpid() % 10000}", ns) for _ in range(max(1, repeat // 2))]
        measured["floor: bare iptables-restore"] = (statistics.median(floors), 0)
    return measured


def growth_exponent(sizes: list[int], seconds: list[float], fixed: float) -> float | None:
    """Least-squares slope of log(t - fixed) against log N (None: too few points), over the
    sizes where the time above the fixed cost is at least a quarter of it: below that,
    a few milliseconds of noise on a shared machine would decide the slope."""
    points = [(math.log(n), math.log(t - fixed)) for n, t in zip(sizes, seconds)
              if n > 0 and t - fixed > max(1e-3, fixed / 4)]
    if len(points) < 2:
        return None
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread if spread else None


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="0,1000,5000,10000,20000")
    parser.add_argument("--repeat", type=int, default=5, help="rounds of small pushes per size (medians)")
    parser.add_argument("--resident", action="store_true",
                        help="small pushes handed by the shim to a resident agent (vragent serve)")
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    work = scratch_dir("vragent-bench-scale-")
    started = time.monotonic()
    load_before = os.getloadavg()
    results = {size: one_size(work, size, args.repeat, args.resident) for size in sizes}
    cases = list(results[sizes[0]])

    print(f"vragent push cost by router size (N hosts, N VMs' data, N forwards and N firewall rules); "
          f"medians of {args.repeat}; load average {load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after, "
          f"{os.cpu_count()} CPUs; {time.monotonic() - started:.0f} s; small pushes "
          f"{'handed to a resident agent' if args.resident else 'applied by the shim itself'}")
    header = f"{'case':<34}" + "".join(f"{f'N={size:,}':>11}" for size in sizes) + f"{'x N=0':>8}{'exp':>7}"
    print(header)
    flagged = []
    for case in cases:
        seconds = [results[size][case][0] for size in sizes]
        exponent = growth_exponent(sizes, seconds, seconds[0] if sizes[0] == 0 else 0.0)
        ratio = seconds[-1] / seconds[0] if seconds[0] else float("nan")
        mark = ""
        if case.startswith("batch") and exponent is not None and exponent > EXPONENT_LIMIT:
            flagged.append(case)
            mark = "  <-- exponent > 1.2"
        print(f"{case:<34}" + "".join(f"{s:>11.3f}" for s in seconds) + f"{ratio:>8.2f}"
              + (f"{exponent:>7.2f}" if exponent is not None else f"{'-':>7}") + mark)
    print(f"{'peak RSS MB (the agent alone)':<34}"
          + "".join(f"{max(kb for _, kb in results[size].values()) / 1024:>11.1f}" for size in sizes)
          + "   (the largest of the cold batches)")
    big = sizes[-1]
    floor = results[big]["floor: bare iptables-restore"][0]
    cold = results[big]["batch: N forwards + N firewall"][0]
    print(f"cold forwards+firewall batch at N={big:,}: {cold / floor:.2f}x the floor")
    if 1000 in results and big != 1000:
        print(f"one added forward at N={big:,} / N=1,000: "
              f"{results[big]['one added forward'][0] / results[1000]['one added forward'][0]:.2f}x")
    print("growth exponents above 1.2: " + (", ".join(flagged) if flagged else "none"))


if __name__ == "__main__":
    main()
