"""Where the time of one small push goes: one dhcpentry through update_config.py.

On a fresh router holding N hosts (and nothing else), interleaved, --repeat rounds of:
  - `ip netns exec NS python3 -c pass`          the interpreter start
  - `... python3 -c 'import <what the shim imports>'`  start + imports
  - `... update_config.py NAME`                 the whole push as the management server makes it
  - the same with `vragent serve` listening       the shim hands the push to the resident agent
and, in one long-lived process, the same push applied by engine.apply again and again:
what each push would cost an agent that stayed resident (no start, no imports, warm
caches), phase by phase (the agent's own phases_ms).

    sudo .venv/bin/python bench/bench_small_push.py [--hosts 0] [--repeat 9]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_scale import base_pushes, dhcp_entry  # noqa: E402
from bench.common import (REPO, resident_agent, router_namespace, run_agent, run_shim_file, scratch_dir,  # noqa: E402
                          write_json)
from vragent.lab import sample  # noqa: E402

SHIM_IMPORTS = "import gc; gc.disable(); import vragent.cli, vragent.shims, vragent.engine"

RESIDENT = """
import json, sys, time, gc
gc.disable()
from vragent import engine
from vragent.shell import log
from vragent.paths import Paths
from vragent.pipeline.intake import load_push
root, first, rounds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
paths = Paths.from_root(root)
log.setup(paths.log)
out = []
for index in range(first, first + rounds):
    text = open(f"{root}/push-{index}.json").read()
    started = time.perf_counter()
    result = engine.apply(paths, load_push(f"vm_dhcp_entry.json.r{index}", text))
    out.append({"seconds": time.perf_counter() - started, "phases": result.phases, "status": result.status})
print(json.dumps(out))
"""


def timed(ns: str, *argv: str) -> float:
    started = time.perf_counter()
    subprocess.run(["ip", "netns", "exec", ns, *argv], check=True, capture_output=True, cwd=REPO)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=0)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    work = scratch_dir("vragent-bench-small-")
    with router_namespace("vrsmall") as ns:
        root = work / "root"
        run_agent(ns, root, "apply", *map(str, base_pushes(work)))
        if args.hosts:
            batch = work / "VR-hosts.cfg"
            batch.write_text(sample.batch_cfg([(f"vm_dhcp_entry.json.{i}", dhcp_entry(i)) for i in range(args.hosts)]))
            run_agent(ns, root, "apply", str(batch))
        start, imports, shim, handed = [], [], [], []
        cache = root / "var/cache/cloud"
        cache.mkdir(parents=True, exist_ok=True)
        for round_ in range(args.repeat):
            start.append(timed(ns, sys.executable, "-c", "pass"))
            imports.append(timed(ns, sys.executable, "-c", SHIM_IMPORTS))
            name = f"vm_dhcp_entry.json.s{round_}"
            write_json(cache, name, dhcp_entry(args.hosts + 1 + round_))
            shim.append(run_shim_file(ns, root, "update_config.py", name))
        with resident_agent(ns, root):
            for round_ in range(args.repeat):
                name = f"vm_dhcp_entry.json.h{round_}"
                write_json(cache, name, dhcp_entry(args.hosts + 500 + round_))
                handed.append(run_shim_file(ns, root, "update_config.py", name))
        for round_ in range(args.repeat):
            write_json(root, f"push-{round_}.json", dhcp_entry(args.hosts + 1000 + round_))
        resident = json.loads(subprocess.run(
            ["ip", "netns", "exec", ns, sys.executable, "-c", RESIDENT, str(root), "0", str(args.repeat)],
            check=True, capture_output=True, text=True, cwd=REPO).stdout)

    def ms(values) -> str:
        return f"{statistics.median(values) * 1000:8.1f} ms"

    print(f"one dhcpentry push on a router holding {args.hosts:,} hosts; medians of {args.repeat}")
    print(f"  interpreter start (python3 -c pass)         {ms(start)}")
    print(f"  + the shim's imports                        {ms(imports)}  ({ms([i - s for i, s in zip(imports, start)])} imports)")
    print(f"  update_config.py NAME, end to end           {ms(shim)}  (no resident agent: the shim applies it)")
    print(f"  update_config.py NAME, resident agent       {ms(handed)}  (handed over to `vragent serve`)")
    print(f"  the same push in a resident process         {ms([r['seconds'] for r in resident[1:]])}"
          "  (first push of the process left out: it imports)")
    phases: dict[str, list[float]] = {}
    for run in resident[1:]:
        for name, value in run["phases"].items():
            phases.setdefault(name, []).append(value)
    print("  resident, by phase (ms):  " + "  ".join(f"{name} {statistics.median(v):.1f}" for name, v in phases.items()))


if __name__ == "__main__":
    main()
