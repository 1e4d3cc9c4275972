#!/usr/bin/python3
"""Drop-in for CloudStack's /opt/cloud/bin/configure.py: nothing left to converge.

The management server runs `configure.py monitor_service.json` right after the
`update_config.py monitor_service.json.<uuid> false` of its periodic health-check refresh.
vragent converged the whole router when update_config.py applied that file. The
incumbent's configure.py would converge from CloudStack's own databags, which vragent does
not keep: it would delete every address missing from its empty ips bag.
"""
import sys

if __name__ == "__main__":  # importable without side effects (the incumbent imports configure)
    from vragent.ops.resident import hand_over

    code = hand_over("configure", sys.argv[1:])  # the resident agent, when it listens
    if code is None:
        from vragent.cli import exit_now
        from vragent.shims import configure

        exit_now(configure(sys.argv[1:]))
    sys.exit(code)
