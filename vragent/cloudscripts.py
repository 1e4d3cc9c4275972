"""The management server's query and maintenance scripts, answered from vragent's state.

Each is a shim in /opt/cloud/bin (packaging/<name>, linked by install-shims) with the
incumbent's arguments and the output the Java side parses:

  get_haproxy_stats.sh IP PORT        the average current sessions (`scur`) of the UP
                                      servers of pool IP_PORT, no newline (AutoScale by
                                      LB connections; VirtualRoutingResource's caller)
  update_interface_config.sh IP PREFIX MTU TIMEOUT
                                      the MTU of the NIC holding IP becomes desired state
                                      and is applied; "Interface with IP IP not found",
                                      exit 1, when no NIC holds it (UpdateNetworkCommand)
  cks_iso.sh true|false               mounts /dev/cdrom at /var/www/html/cks-iso, which the
                                      data server serves as /cks-iso/ (HandleCksIsoCommand)
  manage_service.sh ACTION NAME       systemctl ACTION on vragent's unit for NAME
                                      (ManageServiceCommand: keepalived stop/start)
  bumpup_priority.sh                  nothing to bump: keepalived priorities are the cmdline's
  get_diagnostics_files.py FILE...    a zip of the files (incumbent names mapped to
                                      vragent's), command outputs and vragent's log and
                                      state; prints its path (PrepareFilesCommand)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

from vragent.paths import Paths

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


# -- get_haproxy_stats.sh ---------------------------------------------------------------

def haproxy_sessions(stat_csv: str, pool: str) -> int:
    """The incumbent's answer from `show stat`: rows `<pool>,<pool>...` (the pool's servers
    are named <pool>_<n>, its backend row is BACKEND), the average `scur` (field 5) of the
    servers whose status (field 18) is UP."""
    total = count = 0
    for line in stat_csv.splitlines():
        fields = line.split(",")
        if len(fields) < 18 or fields[0] != pool or not fields[1].startswith(pool):
            continue
        # "UP", or "UP 1/3" (up, a check failing): the incumbent's shell loop splits the
        # status on blanks and compares the first word.
        if fields[17].split(" ", 1)[0] == "UP":
            total += int(fields[4] or 0)
            count += 1
    return total // count if count else 0


def get_haproxy_stats(argv: list[str], paths: Paths) -> int:
    if len(argv) != 2:
        print("usage: get_haproxy_stats.sh PUBLIC_IP PORT", file=sys.stderr)
        return EXIT_USAGE
    from vragent.subsystems.lb import render as layout
    from vragent.subsystems.lb import service as haproxy

    pool = f"{argv[0]}-{argv[1]}".replace(".", "_")
    try:
        stats = haproxy.runtime(layout.stats_socket(paths), "show stat")
    except OSError:
        stats = ""  # no HAProxy (no load balancer): no sessions, as the incumbent answers
    sys.stdout.write(str(haproxy_sessions(stats, pool)))
    return EXIT_OK


# -- update_interface_config.sh ---------------------------------------------------------

def update_interface_config(argv: list[str], paths: Paths) -> int:
    from ipaddress import IPv4Address

    from vragent import engine
    from vragent.shell import log
    from vragent.subsystems.network import interfacemtu
    from vragent.pipeline.intake import Document

    if len(argv) < 3:
        print("usage: update_interface_config.sh IP PREFIX MTU [TIMEOUT]", file=sys.stderr)
        return EXIT_USAGE
    log.setup(paths.log)
    ip = argv[0]
    try:
        device = interfacemtu.device_of(engine.load_state(paths), IPv4Address(ip))
    except ValueError:
        device = None
    if device is None:
        print(f"Interface with IP {ip} not found")
        return EXIT_FAILED
    mtu = int(argv[2]) if argv[2].isdigit() else argv[2]  # anything else: refused by validation, exit 2
    document = Document("update_interface_config", data={"type": "interfacemtu", "ip_address": ip, "mtu": mtu})
    result = engine.apply(paths, [document], names=["update_interface_config"])
    for error in result.errors:
        print(f"{error['path']}: {error['message']}" if error["path"] else error["message"], file=sys.stderr)
    if result.exit_code == 0:
        print(device)
    return result.exit_code


# -- cks_iso.sh -------------------------------------------------------------------------

CKS_ISO_DEVICE = "/dev/cdrom"


def cks_iso(argv: list[str], paths: Paths) -> int:
    from vragent.subsystems.guestdata.render import CKS_ISO_DIR

    if len(argv) != 1 or argv[0] not in ("true", "false"):
        print("usage: cks_iso.sh true|false", file=sys.stderr)
        return EXIT_USAGE
    target = paths.under(CKS_ISO_DIR)
    mounted = os.path.ismount(target)
    if argv[0] == "true":
        print(f"Mounting CKS ISO into {target}")
        if mounted:
            return EXIT_OK
        target.mkdir(parents=True, exist_ok=True)
        device = os.environ.get("VRAGENT_CKS_ISO_DEVICE", CKS_ISO_DEVICE)  # the lab's stand-in for the CD
        done = subprocess.run(["mount", "-o", "ro", device, str(target)], capture_output=True, text=True)
    else:
        print(f"Unmounting CKS ISO from {target}")
        if not mounted:
            return EXIT_OK
        done = subprocess.run(["umount", str(target)], capture_output=True, text=True)
        if done.returncode == 0:
            target.rmdir()
    if done.returncode != 0:
        print(done.stderr.strip(), file=sys.stderr)
        return EXIT_FAILED
    # The data server serves the directory as it finds it: nothing to restart.
    return EXIT_OK


# -- manage_service.sh ------------------------------------------------------------------

# The stock units vragent masks, and the unit that runs each daemon instead.
VRAGENT_UNITS = {name: f"vragent-{name}" for name in
                 ("dnsmasq", "haproxy", "keepalived", "conntrackd", "radvd", "strongswan", "xl2tpd")}
VRAGENT_UNITS.update({"apache2": "vragent-metadata", "cloud-password-server": "vragent-metadata",
                      "ipsec": "vragent-strongswan", "strongswan-starter": "vragent-strongswan"})


def manage_service(argv: list[str], paths: Paths) -> int:
    if len(argv) != 2:
        print("usage: manage_service.sh ACTION SERVICE", file=sys.stderr)
        return EXIT_USAGE
    action, name = argv
    unit = VRAGENT_UNITS.get(name.removesuffix(".service"), name)
    done = subprocess.run(["systemctl", action, unit], capture_output=True, text=True)
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    return done.returncode


# -- bumpup_priority.sh -----------------------------------------------------------------

def bumpup_priority(argv: list[str], paths: Paths) -> int:
    # The incumbent touched /tmp/rrouter_bumped for its keepalived check script; vragent's
    # keepalived has no such script (priorities come from the cmdline's router_pr), and
    # 4.22's management server builds no BumpUpPriorityCommand.
    print("vragent: keepalived priorities come from the cmdline (router_pr); nothing to bump")
    return EXIT_OK


# -- get_diagnostics_files.py -----------------------------------------------------------

# The management server's default file list (diagnostics.data.router.defaults) names the
# incumbent's files; these are vragent's for the same thing.
VRAGENT_FILES = {
    "/etc/dnsmasq.conf": "/etc/vragent/dnsmasq/dnsmasq.conf",
    "/etc/dnsmasq.d/cloud.conf": "/etc/vragent/dnsmasq/dhcpopts",
    "/etc/dnsmasq-resolv.conf": "/etc/vragent/dnsmasq/resolv.conf",
    "/etc/ipsec.d/l2tp.conf": "/etc/vragent/strongswan/swanctl.conf",
    "/var/log/cloud.log": "/var/log/cloud-scripts.log",
}
COMMANDS = {"iptables": ["iptables-save"], "ipaddr": ["ip", "address"], "iprule": ["ip", "rule", "list"],
            "iproute": ["ip", "route", "show", "table", "all"]}


def get_diagnostics_files(argv: list[str], paths: Paths) -> int:
    from vragent.redact import secrets_hidden

    bundle = paths.under(f"root/diagnostics_files_{time.strftime('%Y%m%d-%H%M%S')}.zip")
    found, missing = [], []
    with zipfile.ZipFile(bundle, "w", zipfile.ZIP_DEFLATED) as archive:
        def add_file(name: str, arcname: str, hide_secrets: bool = False) -> None:
            source = paths.under(name)
            if not source.is_file():
                missing.append(name)
                return
            data = source.read_bytes()
            if hide_secrets:
                data = secrets_hidden(data.decode("utf-8", errors="surrogateescape")).encode(
                    "utf-8", errors="surrogateescape")
            archive.writestr(arcname, data)
            found.append(name)

        for item in (a.strip() for a in argv if a.strip()):
            command = item[1:-1] if len(item) > 2 and item.startswith("[") and item.endswith("]") else item
            if command in COMMANDS:
                done = subprocess.run(COMMANDS[command], capture_output=True)
                archive.writestr(f"{command}.log", done.stdout if done.returncode == 0 else done.stderr)
                found.append(item)
            elif item != command:
                missing.append(item)  # other scripts of /opt/cloud/bin: vragent runs none for this
            else:
                add_file(VRAGENT_FILES.get(item, item), Path(item).name)
        # Always vragent's own: its log, its desired state (secrets hidden) and its status.
        add_file("/var/log/cloud-scripts.log", "vragent-cloud-scripts.log")
        add_file("/var/lib/vragent/state.json", "vragent-state.json", hide_secrets=True)
        from vragent.ops import status

        try:
            archive.writestr("vragent-status.json", json.dumps(status.collect(paths), indent=1, default=str))
            found.append("vragent status")
        except Exception as exc:  # noqa: BLE001 - the bundle is for debugging: keep what is there
            archive.writestr("vragent-status.json", json.dumps({"error": repr(exc)}))
        archive.writestr("fileinfo.txt", "".join(f"{name}\n" for name in found)
                         + "".join(f"{name} File Not Found!!\n" for name in missing))
    print(bundle if paths.root == Path("/") else "/" + str(bundle.relative_to(paths.root)))
    return EXIT_OK


SCRIPTS = {
    "get_haproxy_stats.sh": get_haproxy_stats,
    "update_interface_config.sh": update_interface_config,
    "cks_iso.sh": cks_iso,
    "manage_service.sh": manage_service,
    "bumpup_priority.sh": bumpup_priority,
    "get_diagnostics_files.py": get_diagnostics_files,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in SCRIPTS:
        print(f"usage: python3 -m vragent.cloudscripts {{{'|'.join(SCRIPTS)}}} ARGS...", file=sys.stderr)
        return EXIT_USAGE
    return SCRIPTS[argv[0]](argv[1:], Paths.from_root())


if __name__ == "__main__":
    sys.exit(main())
