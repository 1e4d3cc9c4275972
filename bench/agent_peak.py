"""Run the agent in this very process and report its own peak RSS (VmHWM).

`wait4()`'s ru_maxrss is no measure of the agent: the kernel carries the peak of the image
a process replaced across exec(), so a child forked (or vforked) from a 300 MB bench
reports 300 MB for `python3 -c pass`. VmHWM belongs to the agent's own address space.

    python3 bench/agent_peak.py OUT cli|update_config|vr_cfg ARGS...

writes the peak in kB to OUT, then exits with the agent's exit code.
"""

import gc
import os
import sys

gc.disable()  # as vragent.command and the shims do
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def peak_rss_kb() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main() -> None:
    out, entry, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    from vragent import cli, shims

    run = {"cli": cli.main, "update_config": shims.update_config, "vr_cfg": shims.vr_cfg}[entry]
    code = run(args)
    with open(out, "w") as report:
        report.write(str(peak_rss_kb()))
    cli.exit_now(code)


main()
