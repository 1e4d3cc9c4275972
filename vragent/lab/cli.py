"""`vragent lab up|down|check|push|exec`: the sample isolated network on a router replica.

up    builds the namespaces and applies the sample pushes with the real agent
      (--bare: the router keeps just its NICs, for replaying pushes of your own;
      --type vpcrouter|dhcpsrvr: a VPC router with two tiers, a shared network's VR);
check proves the router with real traffic and a convergence check;
push  hands files to the lab router the way the management server does: each file is put
      in the router's /var/cache/cloud and applied by update_config.py (a VR-*.cfg batch by
      vr_cfg.sh -c), the shims a real VR runs, with their output and exit code;
exec  runs a command on one lab machine (vr, vm1, vm2, up, ctl; gw on a shared network),
      e.g. to send traffic;
down  removes every namespace and process again.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path
from typing import Callable

from vragent.lab import sample
from vragent.lab.agent import RouterAgent
from vragent.lab.dhcp import DhcpClient, dig
from vragent.lab.guestdata import metadata, password
from vragent.lab.topology import (NETNS_DIR, CONTROL_ROUTER_IP, EXTRA_PUBLIC_IPS, PUBLIC_GATEWAY, ROUTER_GUEST_IP,
                                  SOURCE_NAT_IP, UPSTREAM_SOURCES, VM1_IP, VM1_MAC, VM2_IP, VM2_MAC, Lab)
from vragent.lab.traffic import TcpServer, tcp_connect

LAB_STATE = Path("/var/tmp/vragent-lab")
PF_IP, NAT_IP = EXTRA_PUBLIC_IPS[0], EXTRA_PUBLIC_IPS[1]
ALLOWED, OTHER = UPSTREAM_SOURCES
USER_DATA = b"#cloud-config\nhostname: web-01\n"


def dhcp_entry(mac: str, ip: str, name: str) -> dict:
    return {"type": "dhcpentry", "host_name": name, "mac_address": mac, "ipv4_address": ip,
            "default_entry": True, "remove": False}


def sample_network() -> list[dict]:
    """The isolated network the lab runs: DHCP/DNS, VM metadata, source NAT, port forwarding,
    static NAT, firewall."""
    return [
        sample.cmdline(),
        sample.ips(),
        dhcp_entry(VM1_MAC, VM1_IP, "web-01"),
        dhcp_entry(VM2_MAC, VM2_IP, "db-01"),
        sample.vmdata(VM1_IP, "web-01", USER_DATA, instance_id="i-2-11-VM"),
        sample.forward_rules(sample.forward_rule(PF_IP, 2222, VM1_IP, 22)),
        sample.staticnat_rules(sample.staticnat_rule(NAT_IP, VM2_IP)),
        sample.firewall_rules(
            sample.firewall_rule(1001, ports=2222, public_ip=PF_IP, source_cidrs=(f"{ALLOWED}/32",)),
            sample.firewall_rule(1002, ports=80, public_ip=NAT_IP),
            sample.firewall_rule(1003, protocol="icmp", public_ip=SOURCE_NAT_IP, icmp_type=8, icmp_code=-1),
            sample.firewall_rule(1004, protocol="all", public_ip=None, source_cidrs=(), dest_cidrs=(),
                                 traffic_type="Egress", default_egress_policy=True),
        ),
    ]


def _agent(lab: Lab, prefix: str) -> RouterAgent:
    return RouterAgent(lab, LAB_STATE / prefix)


def up(prefix: str, bare: bool = False, router_type: str = "router") -> int:
    if router_type != "router" and not bare:
        print(f"the sample network is an isolated router's: a {router_type} lab comes up --bare, "
              "for pushes of your own", file=sys.stderr)
        return 2
    lab = Lab(prefix, router_type=router_type)
    try:
        lab.up()
        shutil.rmtree(LAB_STATE / prefix, ignore_errors=True)
        agent = _agent(lab, prefix)  # marks its root as the router namespace's (vragent.shell.guard)
        if not bare:
            result = agent.apply(*sample_network())
            if result.returncode != 0:
                print("\n".join(result.errors) or result.stderr.strip(), file=sys.stderr)
                print(f"lab {prefix}: the sample network did not apply; removing the lab again", file=sys.stderr)
                _remove(lab, prefix)
                return result.returncode
    except BaseException:
        # Whatever stopped it (a missing tool, ^C), a lab that did not come up leaves nothing behind.
        _remove(lab, prefix)
        raise
    if bare:
        print(f"lab {prefix} is up: {router_type} {lab.ns('vr')} has its NICs and nothing else "
              f"(its root: {LAB_STATE / prefix}); `vragent lab push FILE...` configures it")
    else:
        print(f"lab {prefix} is up: router {lab.ns('vr')} applied the sample network "
              f"({len(result.steps)} steps in {result.result.get('duration_ms', 0):.0f} ms)")
    print(lab.describe())
    return 0


def _remove(lab: Lab, prefix: str) -> None:
    try:
        lab.down()
    finally:
        shutil.rmtree(LAB_STATE / prefix, ignore_errors=True)


def down(prefix: str) -> int:
    Lab(prefix).down()
    shutil.rmtree(LAB_STATE / prefix, ignore_errors=True)
    print(f"lab {prefix} removed")
    return 0


def check(prefix: str) -> int:
    lab = Lab(prefix)
    if not lab.exists():
        print(f"lab {prefix} is not up; run `vragent lab up` first", file=sys.stderr)
        return 1
    agent = _agent(lab, prefix)
    checks: list[tuple[str, Callable[[], bool]]] = []

    def seen(role: str, dst: str, port: int, server_role: str, source: str | None = None) -> str | None:
        with TcpServer(lab, server_role, port):
            result = tcp_connect(lab, role, dst, port, timeout=1.5, source=source)
        return result.peer_seen if result.ok else None

    checks += [
        ("DHCP: VM1 gets its static lease, gateway and name from the router",
         lambda: _dhcp(lab) == (VM1_IP, ROUTER_GUEST_IP, "web-01")),
        ("DNS: VM1 resolves VM2's name through the router",
         lambda: dig(lab, "vm1", ROUTER_GUEST_IP, "db-01.lab.internal") == [VM2_IP]),
        ("metadata: VM1 reads its own user-data and instance-id; VM2 has no user-data",
         lambda: _metadata(lab)),
        ("password: VM1 fetches the password pushed for it, once", lambda: _password(lab, agent)),
        ("DNS: no answer on the public IP (no open resolver)",
         lambda: dig(lab, "up", SOURCE_NAT_IP, "db-01.lab.internal") == []),
        ("guest VM reaches upstream, seen as the source-NAT IP",
         lambda: seen("vm1", PUBLIC_GATEWAY, 8080, "up") == SOURCE_NAT_IP),
        ("static NAT: upstream reaches VM2 on its public IP",
         lambda: seen("up", NAT_IP, 80, "vm2", source=OTHER) == OTHER),
        ("static NAT: VM2's outbound traffic leaves with its public IP",
         lambda: seen("vm2", PUBLIC_GATEWAY, 8081, "up") == NAT_IP),
        ("port forwarding: public IP:2222 reaches VM1:22 from the allowed source",
         lambda: _forwarded(lab, ALLOWED)),
        ("ingress firewall: the same port from another source is dropped",
         lambda: not _forwarded(lab, OTHER)),
        ("hairpin: VM2 reaches VM1 through the public IP",
         lambda: _hairpin(lab) == ROUTER_GUEST_IP),
        ("SSH 3922 reachable from the control network",
         lambda: _ssh(lab, "ctl", CONTROL_ROUTER_IP)),
        ("SSH 3922 not reachable from a guest VM", lambda: not _ssh(lab, "vm1", ROUTER_GUEST_IP)),
        ("SSH 3922 not reachable from the public side", lambda: not _ssh(lab, "up", SOURCE_NAT_IP)),
        ("a second apply of the same pushes changes nothing (as remembered, and with --full)",
         lambda: all(r.result.get("status") == "unchanged" for r in agent.reapply(*sample_network()))),
    ]
    passed = failed = 0
    for description, probe in checks:
        try:
            ok = bool(probe())
        except Exception as exc:  # noqa: BLE001 - a broken probe is a failed check, with its reason
            print(f"  error in probe: {exc}")
            ok = False
        print(f"{'PASS' if ok else 'FAIL'}  {description}")
        passed, failed = passed + ok, failed + (not ok)
    print(f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


def _dhcp(lab: Lab) -> tuple:
    import tempfile

    with tempfile.TemporaryDirectory(prefix="vragent-lab-dhcp-") as directory:
        client = DhcpClient(lab, "vm1", Path(directory))
        try:
            lease = client.obtain()
        finally:
            client.stop()
    return lease.ip, lease.options.get("new_routers"), lease.options.get("new_host_name")


def _metadata(lab: Lab) -> bool:
    user_data, instance = metadata(lab, "vm1", ROUTER_GUEST_IP, "/latest/user-data", "/latest/meta-data/instance-id")
    (other,) = metadata(lab, "vm2", ROUTER_GUEST_IP, "/latest/user-data")
    return (user_data.status, user_data.body, instance.text, other.status) == (200, USER_DATA, "i-2-11-VM", 404)


def _password(lab: Lab, agent: RouterAgent) -> bool:
    """As a VM start with a password does: the management server pushes it, cloud-init
    fetches it and acknowledges it; after that the server has none for the VM."""
    if agent.apply(sample.vmpassword(VM1_IP, "Lab-pw-42")).returncode != 0:
        return False
    answers = password(lab, "vm1", ROUTER_GUEST_IP, "send_my_password", "saved_password", "send_my_password")
    return [a.text for a in answers] == ["Lab-pw-42", "saved_password", "saved_password"]


def _forwarded(lab: Lab, source: str) -> bool:
    with TcpServer(lab, "vm1", 22):
        return tcp_connect(lab, "up", PF_IP, 2222, timeout=1.5, source=source).ok


def _hairpin(lab: Lab) -> str | None:
    with TcpServer(lab, "vm1", 22):
        result = tcp_connect(lab, "vm2", PF_IP, 2222, timeout=1.5)
    return result.peer_seen if result.ok else None


def _ssh(lab: Lab, role: str, address: str) -> bool:
    with TcpServer(lab, "vr", 3922):
        return tcp_connect(lab, role, address, 3922, timeout=1.0).ok


# The shims' calling convention, run by the router's own Python as /opt/cloud/bin would.
_SHIM = "import sys; from vragent.cli import exit_now; from vragent import shims; exit_now(shims.{}(sys.argv[1:]))"


def push(prefix: str, files: list[str]) -> int:
    """Each file as one push of the management server, in order; stops at the first that
    does not apply (as the management server stops a command sequence), with its exit code."""
    lab = Lab(prefix)
    if not (NETNS_DIR / lab.ns("vr")).exists():  # any router type: the router's namespace is enough
        print(f"lab {prefix} is not up; run `vragent lab up` first", file=sys.stderr)
        return 1
    root = LAB_STATE / prefix
    _agent(lab, prefix)  # the root is that router namespace's (vragent.shell.guard)
    cache = root / "var" / "cache" / "cloud"
    cache.mkdir(parents=True, exist_ok=True)
    for name in files:
        source = Path(name)
        if not source.is_file():
            print(f"{name}: no such file", file=sys.stderr)
            return 2
        target = cache / source.name
        shutil.copyfile(source, target)
        if source.name.startswith("VR-") and source.name.endswith(".cfg"):
            shim, args = "vr_cfg", ["-c", str(target)]
        else:
            shim, args = "update_config", [source.name]
        done = lab.run("vr", ["env", f"VRAGENT_ROOT={root}", sys.executable, "-c", _SHIM.format(shim), *args],
                       check=False, timeout=600)
        sys.stdout.write(done.stdout)
        sys.stderr.write(done.stderr)
        print(f"{source.name}: {'vr_cfg.sh -c' if shim == 'vr_cfg' else 'update_config.py'} exited {done.returncode}")
        if done.returncode != 0:
            return done.returncode
    return 0


def run_on(prefix: str, role: str, argv: list[str]) -> int:
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        print("usage: vragent lab exec ROLE COMMAND [ARG...]", file=sys.stderr)
        return 2
    try:
        namespace = Lab(prefix).ns(role)
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    import subprocess

    return subprocess.run(["ip", "netns", "exec", namespace, *argv], check=False).returncode


def main(args) -> int:
    """`args`: the parsed `vragent lab ACTION` command line."""
    if args.action == "up":
        return up(args.prefix, args.bare, args.router_type)
    if args.action == "push":
        return push(args.prefix, args.files)
    if args.action == "exec":
        return run_on(args.prefix, args.role, args.argv)
    return {"down": down, "check": check}[args.action](args.prefix)
