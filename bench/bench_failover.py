"""Failover of a redundant router pair, measured with a guest VM's traffic.

For each fault, `--runs` failovers (the primary alternates): the time from the fault until
a guest VM's probes to the upstream host are answered again (a probe every 20 ms through
the VIP and source NAT), as min/median/max next to VRRP's own floor for the configured
advert_int. Then `--pushes` ordinary pushes (port forwarding, firewall, DHCP entries) to
both routers under a 10 pps ping: VRRP transitions and lost probes (target: 0 and 0).

Faults: `kill` SIGKILLs every keepalived process of the primary (2.2.7 then keeps its VIP;
vragent takes it down), `link` pulls the primary's guest cable, `stop` is a graceful stop
(keepalived sends priority 0). Targets: 3 x advert_int + 1 s for kill and link, 1 s for stop.

    sudo .venv/bin/python bench/bench_failover.py [--runs 10] [--pushes 50] [--advert-int 1]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from vragent.lab import sample  # noqa: E402
from vragent.lab.redundancy import (Pair, Prober, protocol_floor, router_of_mac, vip_owners,  # noqa: E402
                                    wait_until)
from vragent.lab.topology import EXTRA_PUBLIC_IPS, PUBLIC_GATEWAY, VM2_IP, Lab  # noqa: E402

FAULTS = {
    "kill": ("SIGKILL of the primary's keepalived", lambda pair, role: pair.kill_keepalived(role)),
    "link": ("primary's guest link down", lambda pair, role: pair.guest_link(role, up=False)),
    "stop": ("graceful stop of the primary's keepalived", lambda pair, role: pair.stop_keepalived(role)),
}


def failover(pair: Pair, fault: str, work: Path, advert_int: int) -> tuple[float, int]:
    """One failover; returns (seconds until traffic flowed again, routers answering for the VIP)."""
    old = pair.primary()
    if old is None:
        raise SystemExit(f"no single PRIMARY: {pair.statuses()}")
    new = pair.other(old)
    with Prober(pair.lab, "vm1", PUBLIC_GATEWAY, 0.02, work) as probe:
        time.sleep(0.5)
        moment = FAULTS[fault][1](pair, old)
        if not wait_until(lambda: pair.primary() == new, 3 * advert_int + 10):
            raise SystemExit(f"{fault}: {new} did not become PRIMARY: {pair.statuses()}")
        time.sleep(1.5)
    owners = {router_of_mac(mac) for mac in vip_owners(pair.lab)}
    if fault == "link":
        pair.guest_link(old, up=True)
    # The old primary comes back (restarted by the supervisor, or its cable back) as BACKUP.
    if not wait_until(lambda: pair.statuses() == {old: "BACKUP", new: "PRIMARY"}, 20):
        raise SystemExit(f"{fault}: {old} did not come back as BACKUP: {pair.statuses()}")
    return probe.log().outage_after(moment), len(owners)


def pushes(count: int) -> list[dict]:
    pf_ip = EXTRA_PUBLIC_IPS[0]
    items = []
    for n in range(count):
        kind = n % 3
        if kind == 0:
            items.append(sample.forward_rules(sample.forward_rule(pf_ip, 3000 + n, VM2_IP, 80)))
        elif kind == 1:
            items.append(sample.firewall_rules(sample.firewall_rule(100 + n, ports=3000 + n - 1, public_ip=pf_ip)))
        else:
            items.append({"type": "dhcpentry", "host_name": f"vm-{n}", "mac_address": f"02:00:00:00:02:{n % 256:02x}",
                          "ipv4_address": f"192.0.2.{100 + n % 150}", "default_entry": True, "remove": False})
    return items


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10, help="failovers per fault (default %(default)s)")
    parser.add_argument("--pushes", type=int, default=50, help="ordinary pushes to each router (default %(default)s)")
    parser.add_argument("--advert-int", type=int, default=1)
    parser.add_argument("--faults", default="kill,link,stop")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vragent-bench-failover-"))
    lab = Lab("vrbenchfo", routers=2)
    lab.up()
    try:
        pair = Pair(lab, work, advert_int=args.advert_int)
        pair.start()
        priorities = sorted(pair.status(role)["priority"] for role in pair.routers)
        hard_floor = protocol_floor(args.advert_int, priorities[0])
        graceful_floor = (256 - priorities[0]) / 256 * args.advert_int
        print(f"redundant pair, advert_int {args.advert_int} s, priorities {priorities}, {args.runs} failovers per fault")
        print(f"VRRP floor after the primary falls silent: 3 x advert_int + skew = {hard_floor:.2f} s "
              f"(so {hard_floor - args.advert_int:.2f}..{hard_floor:.2f} s after a fault, by when the last "
              f"advertisement went out); after a graceful stop (priority 0): skew = {graceful_floor:.2f} s")
        print(f"{'fault':44} {'min':>6} {'median':>7} {'max':>6} {'target':>7} {'floor':>6}  VIP holders")
        for fault in args.faults.split(","):
            times, holders = [], set()
            for _ in range(args.runs):
                outage, owners = failover(pair, fault, work, args.advert_int)
                times.append(outage)
                holders.add(owners)
            target = 1.0 if fault == "stop" else 3 * args.advert_int + 1
            floor = graceful_floor if fault == "stop" else hard_floor
            print(f"{FAULTS[fault][0]:44} {min(times):6.2f} {statistics.median(times):7.2f} {max(times):6.2f} "
                  f"{target:7.2f} {floor:6.2f}  {sorted(holders)}")
            sys.stdout.flush()

        before = pair.transitions()
        durations = []
        with Prober(lab, "vm1", PUBLIC_GATEWAY, 0.1, work) as probe:
            started = time.monotonic()
            for payload in pushes(args.pushes):
                for role in pair.routers:
                    t = time.monotonic()
                    result = pair.apply(role, payload)
                    durations.append(time.monotonic() - t)
                    if result.returncode != 0:
                        raise SystemExit(f"push failed on {role}: {result.errors}")
            time.sleep(1.0)
        log = probe.log()
        lost = log.lost(started, max(log.sent.values()) - 0.5)
        after = pair.transitions()
        changes = sum(after[r] - before[r] for r in after)
        print(f"{args.pushes} ordinary pushes to each router (median apply {statistics.median(durations) * 1000:.0f} ms): "
              f"{changes} VRRP transitions, {len(lost)} of {len(log.sent)} probes lost at 10 pps (target 0 and 0)")
    finally:
        lab.down()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
