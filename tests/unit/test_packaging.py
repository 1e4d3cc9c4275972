"""The Debian package, the systemd units and the drop-in shims, checked without installing them.

Unit files are read with configparser (every value of a repeated key kept, as systemd
does for Exec*= lines); the helpers in packaging/lib/ run against a temporary root.
Building the .deb itself is slow and needs dpkg-buildpackage: set VRAGENT_BUILD_DEB=1.
"""

from __future__ import annotations

import configparser
import importlib.machinery
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from vragent import __version__
from vragent.model import RouterState
from vragent.pipeline import netfilter

REPO = Path(__file__).resolve().parents[2]
SYSTEMD = REPO / "systemd"
PACKAGING = REPO / "packaging"
HELPERS = PACKAGING / "lib"
DEBIAN = REPO / "debian"

DAEMONS = ("dnsmasq", "haproxy", "metadata", "keepalived", "conntrackd", "radvd", "strongswan", "xl2tpd")
UNITS = sorted(p.name for p in SYSTEMD.glob("vragent-*"))
DROP_INS = sorted(str(p.relative_to(SYSTEMD)) for p in SYSTEMD.glob("*.d/*.conf"))

# Every absolute path a unit may name: the agent's documented paths, the daemons'
# binaries from their Debian packages, and what this package installs.
DOCUMENTED_PATHS = {
    # vragent and its helpers
    "/usr/bin/vragent",
    "/usr/lib/vragent/fail-closed",
    "/usr/lib/vragent/install-shims",
    "/usr/lib/vragent/keepalived-vips",
    "/usr/lib/vragent/sshd-listen",
    "/usr/lib/vragent/neutralize-rules-v4",
    # the daemons and the tools the units call (Debian 12 paths)
    "/usr/sbin/dnsmasq", "/usr/sbin/haproxy", "/usr/sbin/keepalived", "/usr/sbin/conntrackd", "/usr/sbin/radvd",
    "/usr/sbin/charon-systemd", "/usr/sbin/swanctl", "/usr/sbin/xl2tpd",
    "/usr/sbin/sshd", "/bin/kill", "/bin/rm", "/bin/udevadm", "/usr/bin/python3",
    # daemon configurations vragent writes
    "/etc/vragent/dnsmasq/dnsmasq.conf",
    "/etc/haproxy/haproxy.cfg",
    "/etc/keepalived/keepalived.conf",
    "/etc/conntrackd/conntrackd.conf",
    "/etc/vragent/metadata/server.json",
    "/etc/vragent/radvd.conf",
    "/etc/vragent/strongswan/strongswan.conf",
    "/etc/vragent/strongswan/swanctl.conf",
    "/etc/vragent/xl2tpd/xl2tpd.conf",
    # pid and lock files under vragent's runtime directory
    "/run/vragent/dnsmasq.pid",
    "/run/vragent/haproxy.pid",
    "/run/vragent/keepalived.pid",
    "/run/vragent/keepalived_vrrp.pid",
    "/run/vragent/keepalived_checkers.pid",
    "/run/vragent/keepalived_bfd.pid",
    "/run/vragent/conntrackd.lock",
    "/run/vragent/radvd.pid",
    "/run/vragent/charon.vici",
    "/run/vragent/xl2tpd.pid",
    "/run/vragent/xl2tpd-control",
    # CloudStack's entry points
    "/opt/cloud/bin/update_config.py",
    "/opt/cloud/bin/vr_cfg.sh",
    "/opt/cloud/bin/configure.py",
    "/opt/cloud/bin/netusage.sh",
    "/opt/cloud/bin/vpc_netusage.sh",
    "/opt/cloud/bin/checkrouter.sh",
    "/opt/cloud/bin/checkbatchs2svpn.sh",
}


class _KeepRepeats(dict):
    """A section that keeps every value of a repeated key (ExecReload= twice, ...)."""

    def __setitem__(self, key, value):
        if key in self and isinstance(value, list) and isinstance(self[key], list):
            self[key].extend(value)
        else:
            super().__setitem__(key, value)


def read_unit(path: Path) -> dict[str, dict[str, list[str]]]:
    parser = configparser.ConfigParser(strict=False, interpolation=None, dict_type=_KeepRepeats,
                                       comment_prefixes=("#", ";"), empty_lines_in_values=False)
    parser.optionxform = str  # systemd keys are case-sensitive
    parser.read(path)
    return {section: {key: value.split("\n") for key, value in parser.items(section)}
            for section in parser.sections()}


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    return read_unit(SYSTEMD / name)


def one(section: dict[str, list[str]], key: str) -> str:
    values = section[key]
    assert len(values) == 1, f"{key} is set {len(values)} times"
    return values[0]


def words(section: dict[str, list[str]], key: str) -> set[str]:
    return {word for value in section.get(key, []) for word in value.split()}


def load_helper(name: str):
    loader = importlib.machinery.SourceFileLoader(name.replace("-", "_"), str(HELPERS / name))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[loader.name] = module  # dataclasses look their module up
    loader.exec_module(module)
    return module


# --- daemon units --------------------------------------------------------------------


@pytest.mark.parametrize("daemon", DAEMONS)
def test_a_dead_daemon_comes_back(daemon):
    service = unit(f"vragent-{daemon}.service")
    assert one(service["Service"], "Restart") == "always"
    # No start rate limit that would leave a router without its daemon for good.
    assert one(service["Unit"], "StartLimitIntervalSec") == "0"


@pytest.mark.parametrize("daemon", DAEMONS)
def test_daemons_are_not_enabled_at_boot_on_their_own(daemon):
    service = unit(f"vragent-{daemon}.service")
    assert "Install" not in service, "vragent-restore.service starts what the state needs"
    # vragent-restore starts them before basic.target: default dependencies would deadlock it.
    assert one(service["Unit"], "DefaultDependencies") == "no"
    assert "shutdown.target" in words(service["Unit"], "Conflicts")
    assert "shutdown.target" in words(service["Unit"], "Before")
    assert "vragent-restore.service" not in words(service["Unit"], "After")


def test_dnsmasq_runs_the_agents_config_and_reloads_with_sighup():
    service = unit("vragent-dnsmasq.service")["Service"]
    start = one(service, "ExecStart")
    assert start.startswith("/usr/sbin/dnsmasq ")
    assert "--conf-file=/etc/vragent/dnsmasq/dnsmasq.conf" in start.split()
    assert "--pid-file=/run/vragent/dnsmasq.pid" in start.split()
    assert one(service, "Type") == "forking"
    assert one(service, "PIDFile") == "/run/vragent/dnsmasq.pid"
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_haproxy_runs_master_worker_and_reloads_hitlessly_with_sigusr2():
    service = unit("vragent-haproxy.service")["Service"]
    start = one(service, "ExecStart").split()
    assert start[0] == "/usr/sbin/haproxy"
    assert "-Ws" in start  # master-worker with sd_notify
    assert start[start.index("-f") + 1] == "/etc/haproxy/haproxy.cfg"
    assert start[start.index("-p") + 1] == "/run/vragent/haproxy.pid"
    assert one(service, "Type") == "notify"
    check, signal = service["ExecReload"]
    assert check.split()[:2] == ["/usr/sbin/haproxy", "-c"], "a config the master rejects is never signalled"
    assert signal == "/bin/kill -USR2 $MAINPID"
    assert one(service, "KillMode") == "mixed"


def test_keepalived_reloads_with_sighup_and_releases_its_vips_after_any_stop():
    service = unit("vragent-keepalived.service")["Service"]
    start = one(service, "ExecStart").split()
    assert start[:2] == ["/usr/sbin/keepalived", "--dont-fork"]
    assert "--use-file=/etc/keepalived/keepalived.conf" in start
    assert "--pid=/run/vragent/keepalived.pid" in start
    assert one(service, "Type") == "notify"
    # The configuration the daemon runs is remembered at start and at every reload ...
    assert service["ExecStartPre"] == ["/usr/lib/vragent/keepalived-vips snapshot"]
    assert service["ExecReload"] == ["/usr/lib/vragent/keepalived-vips snapshot", "/bin/kill -HUP $MAINPID"]
    # ... and its addresses are removed after every stop, SIGKILL included; then the router
    # goes FAULT (public NIC down, primary-only daemons stopped) if keepalived is dead.
    assert service["ExecStopPost"] == ["/usr/lib/vragent/keepalived-vips release",
                                       "/usr/bin/vragent transition fault --release-vips --if-keepalived-dead"]
    assert one(service, "KillMode") == "mixed"


def test_the_data_server_runs_in_the_foreground_and_rereads_on_sighup():
    service = unit("vragent-metadata.service")["Service"]
    start = one(service, "ExecStart").split()
    assert start[:3] == ["/usr/bin/python3", "-m", "vragent.metadata_server"]
    assert "--foreground" in start and start[start.index("--config") + 1] == "/etc/vragent/metadata/server.json"
    assert one(service, "Type") == "notify"
    assert service["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


def test_strongswan_runs_charon_systemd_on_the_agents_config_and_reloads_over_vici():
    service = unit("vragent-strongswan.service")["Service"]
    assert one(service, "ExecStart") == "/usr/sbin/charon-systemd"
    assert one(service, "Type") == "notify"
    assert service["Environment"] == ["STRONGSWAN_CONF=/etc/vragent/strongswan/strongswan.conf"]
    load = "/usr/sbin/swanctl --load-all --clear --noprompt --file /etc/vragent/strongswan/swanctl.conf"
    assert [line.split(" --uri")[0] for line in service["ExecStartPost"] + service["ExecReload"]] == [load, load]


def test_xl2tpd_runs_in_the_foreground_and_restarts_because_it_cannot_reload():
    service = unit("vragent-xl2tpd.service")["Service"]
    start = one(service, "ExecStart").split()
    assert start[:2] == ["/usr/sbin/xl2tpd", "-D"]
    assert start[start.index("-c") + 1] == "/etc/vragent/xl2tpd/xl2tpd.conf"
    assert "ExecReload" not in service


def test_conntrackd_restarts_because_it_cannot_reload():
    service = unit("vragent-conntrackd.service")["Service"]
    assert one(service, "ExecStart") == "/usr/sbin/conntrackd -C /etc/conntrackd/conntrackd.conf"
    assert one(service, "Type") == "notify"
    # Without ExecReload, `systemctl reload-or-restart` (the agent's reload) restarts it.
    assert "ExecReload" not in service
    # A killed conntrackd leaves its lock file, and the next one would refuse to start.
    assert service["ExecStartPre"] == ["/bin/rm -f /run/vragent/conntrackd.lock"]


# --- boot ------------------------------------------------------------------------------


def test_restore_is_a_oneshot_that_runs_before_the_network_is_up():
    restore = unit("vragent-restore.service")
    head, service = restore["Unit"], restore["Service"]
    assert one(service, "Type") == "oneshot"
    assert one(service, "RemainAfterExit") == "yes"
    assert one(head, "DefaultDependencies") == "no"
    assert "network-pre.target" in words(head, "Before")
    assert "network-pre.target" in words(head, "Wants"), "systemd.special(7): firewalls pull network-pre in"
    assert "local-fs.target" in words(head, "After")
    assert "systemd-udev-trigger.service" in words(head, "After")
    # On CloudStack's template: before its boot scripts bring the NICs up.
    assert {"cloud-early-config.service", "cloud-postinit.service"} <= words(head, "Before")
    assert one(service, "ExecStart") == "/usr/bin/vragent restore"
    assert "multi-user.target" in words(restore["Install"], "WantedBy")


def test_the_router_is_closed_before_forwarding_is_switched_on():
    closed = unit("vragent-fail-closed.service")
    head = closed["Unit"]
    assert one(head, "DefaultDependencies") == "no"
    # systemd-sysctl applies /etc/sysctl.d/60-vragent.conf, net.ipv4.ip_forward=1 included.
    assert {"systemd-sysctl.service", "network-pre.target"} <= words(head, "Before")
    assert "local-fs.target" not in words(head, "After"), "it would hold systemd-sysctl back"
    assert one(closed["Service"], "Type") == "oneshot"
    assert one(closed["Service"], "ExecStart") == "/usr/lib/vragent/fail-closed"
    assert "sysinit.target" in words(closed["Install"], "WantedBy")
    restore = unit("vragent-restore.service")
    # Wants, not Requires: when closing failed, restoring the full rule set is still better.
    assert "vragent-fail-closed.service" in words(restore["Unit"], "Wants")
    assert "vragent-fail-closed.service" in words(restore["Unit"], "After")
    assert restore["Service"]["ExecStartPre"] == ["-/bin/udevadm settle --timeout=30"], "wait (bounded) for the NICs"


def _rule_lines(text: str, table: str = "filter") -> list[str]:
    lines, current = [], None
    for line in text.splitlines():
        if line.startswith("*"):
            current = line[1:]
        elif current == table and (line.startswith("-A ") or line.startswith(":")):
            lines.append(line)
    return lines


def run_helper(name: str, *args: str, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run([str(HELPERS / name), *args], capture_output=True, text=True, timeout=30,
                          env={**os.environ, **(env or {})}, check=check)


def test_fail_closed_rules_drop_by_default_and_are_what_the_agent_renders_for_no_state(tmp_path):
    printed = run_helper("fail-closed", "--print", env={"VRAGENT_ROOT": str(tmp_path)}).stdout
    baseline = _rule_lines(printed)
    assert ":INPUT DROP [0:0]" in baseline and ":FORWARD DROP [0:0]" in baseline
    agent = _rule_lines(netfilter.render_restore(netfilter.render(RouterState())))
    rules = [line for line in baseline if line.startswith("-A ")]
    assert rules and set(rules) <= set(agent), "the baseline must open nothing the agent would not"
    assert "-A vr-INPUT -i eth1 -p tcp -m tcp --dport 3922 -j ACCEPT" in rules
    assert not any(line.startswith("-A vr-FORWARD") and "ESTABLISHED" not in line for line in rules)


def test_fail_closed_admits_ssh_on_eth0_on_a_vpc_router(tmp_path):
    (tmp_path / "var/cache/cloud").mkdir(parents=True)
    (tmp_path / "var/cache/cloud/cmdline").write_text("template=domP name=r-7-VM type=vpcrouter eth0ip=169.254.3.4\n")
    printed = run_helper("fail-closed", "--print", env={"VRAGENT_ROOT": str(tmp_path)}).stdout
    assert "-A vr-INPUT -i eth0 -p tcp -m tcp --dport 3922 -j ACCEPT" in printed
    assert "-i eth1" not in printed


# --- paths -----------------------------------------------------------------------------

_PATH = re.compile(r"(?<![\w.:$-])(/[\w./@*-]+)")


def _paths_in(path: Path) -> set[str]:
    found = set()
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";", "[")) or line.startswith(("Documentation=", "Description=")):
            continue
        # A socket URI (unix:///run/...) names the path after its scheme.
        value = line.split("=", 1)[1].replace("unix://", "")
        found.update(match.rstrip(".") for match in _PATH.findall(value))
    return found


@pytest.mark.parametrize("name", UNITS + DROP_INS)
def test_units_name_only_documented_paths(name):
    undocumented = _paths_in(SYSTEMD / name) - DOCUMENTED_PATHS
    assert not undocumented


def test_every_helper_a_unit_runs_is_shipped_and_executable():
    for name in UNITS + DROP_INS:
        for path in _paths_in(SYSTEMD / name):
            if path.startswith("/usr/lib/vragent/"):
                helper = HELPERS / path.removeprefix("/usr/lib/vragent/")
                assert helper.is_file() and os.access(helper, os.X_OK), path


def test_units_pass_systemd_analyze_verify(tmp_path):
    """systemd-analyze verify on a root with the units, stub executables and the system's targets."""
    analyze = shutil.which("systemd-analyze")
    host_units = Path("/lib/systemd/system")
    if analyze is None or not (host_units / "network-pre.target").exists():
        pytest.skip("systemd-analyze and the system's unit files are needed")
    unit_dir = tmp_path / "lib/systemd/system"
    unit_dir.mkdir(parents=True)
    for target in host_units.glob("*.target"):
        shutil.copy(target, unit_dir)
    for name in UNITS:
        shutil.copy(SYSTEMD / name, unit_dir)
    for drop_in in DROP_INS:
        (unit_dir / drop_in).parent.mkdir(exist_ok=True)
        shutil.copy(SYSTEMD / drop_in, unit_dir / drop_in)
    # The units the drop-ins extend (Debian's ssh.service, CloudStack's cloud-postinit).
    (unit_dir / "ssh.service").write_text("[Service]\nExecStartPre=/usr/sbin/sshd -t\nExecStart=/usr/sbin/sshd -D\n")
    (unit_dir / "cloud-postinit.service").write_text("[Service]\nType=oneshot\nExecStart=/bin/true\n")
    for executable in DOCUMENTED_PATHS | {"/bin/true"}:
        if executable.startswith(("/usr/bin/", "/usr/sbin/", "/bin/", "/usr/lib/vragent/")):
            stub = tmp_path / executable.lstrip("/")
            stub.parent.mkdir(parents=True, exist_ok=True)
            stub.write_text("#!/bin/sh\n")
            stub.chmod(0o755)
    names = UNITS + ["ssh.service", "cloud-postinit.service"]
    done = subprocess.run([analyze, "verify", "--man=no", f"--root={tmp_path}", *names],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and not done.stdout.strip() and not done.stderr.strip(), done.stderr


# --- shims -----------------------------------------------------------------------------


def test_shims_are_executable_and_call_vragents_shims_module():
    update_config = PACKAGING / "update_config.py"
    vr_cfg = PACKAGING / "vr_cfg.sh"
    for shim in (update_config, vr_cfg):
        assert os.access(shim, os.X_OK), shim
    assert update_config.read_text().startswith("#!/usr/bin/python3\n")
    assert "from vragent.shims import update_config" in update_config.read_text()
    assert vr_cfg.read_text().startswith("#!/bin/sh\n")
    assert "from vragent.shims import vr_cfg" in vr_cfg.read_text()


def test_configure_shim_is_a_silent_success_and_importing_it_does_nothing(tmp_path):
    # The management server runs `configure.py monitor_service.json` after its health-check
    # refresh push (SetMonitorServiceConfigItem) and reads its exit code: the push was applied.
    env = {**os.environ, "VRAGENT_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    shim = PACKAGING / "configure.py"
    assert os.access(shim, os.X_OK) and shim.read_text().startswith("#!/usr/bin/python3\n")
    done = subprocess.run([sys.executable, str(shim), "monitor_service.json"], capture_output=True, text=True,
                          env=env, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert "configure.py monitor_service.json: nothing to do" in (tmp_path / "var/log/cloud-scripts.log").read_text()
    imported = subprocess.run([sys.executable, "-c", "import configure"], cwd=PACKAGING, capture_output=True,
                              text=True, env=env, timeout=60)
    assert imported.returncode == 0 and not (tmp_path / "var/lib/vragent").exists()


def test_update_config_shim_reports_a_missing_file_as_failure(tmp_path):
    env = {**os.environ, "VRAGENT_ROOT": str(tmp_path), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(PACKAGING / "update_config.py"), "firewall_rules.json.1"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 1
    assert "does not exist" in done.stderr


def _incumbent_tarball(path: Path, names=("update_config.py", "vr_cfg.sh", "configure.py", "checkrouter.sh")) -> None:
    """A stand-in for the management server's cloud-scripts.tgz: the incumbent's file names."""
    source = path.parent / "incumbent"
    for name in names:
        script = source / "opt/cloud/bin" / name
        script.parent.mkdir(parents=True, exist_ok=True)
        script.write_text(f"#!/bin/sh\necho incumbent {name}\n")
        script.chmod(0o755)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(source / "opt", arcname="opt")


def test_shims_survive_a_cloud_scripts_patch(tmp_path):
    root = tmp_path / "root"
    env = {"VRAGENT_ROOT": str(root), "VRAGENT_SHIMS": str(PACKAGING)}
    tgz = tmp_path / "cloud-scripts.tgz"
    _incumbent_tarball(tgz)
    bin_dir = root / "opt/cloud/bin"

    with tarfile.open(tgz) as tar:  # the image as CloudStack builds it
        tar.extractall(root)
    run_helper("install-shims", env=env)
    assert os.readlink(bin_dir / "update_config.py") == str(PACKAGING / "update_config.py")
    assert os.readlink(bin_dir / "vr_cfg.sh") == str(PACKAGING / "vr_cfg.sh")
    assert os.readlink(bin_dir / "configure.py") == str(PACKAGING / "configure.py")
    assert (bin_dir / "checkrouter.sh").is_symlink() and not (bin_dir / "get_template_version.sh").exists()
    assert run_helper("install-shims", "check", env=env).returncode == 0

    subprocess.run(["tar", "xzf", str(tgz), "-C", str(root)], check=True)  # the patch, as cloud-early-config does it
    assert run_helper("install-shims", "check", env=env, check=False).returncode == 1
    run_helper("install-shims", env=env)  # what vragent-shims.path triggers
    assert run_helper("install-shims", "check", env=env).returncode == 0
    assert (root / "var/lib/vragent/incumbent/update_config.py").read_text() == "#!/bin/sh\necho incumbent update_config.py\n"

    run_helper("install-shims", "remove", env=env)  # package removal
    assert not (bin_dir / "update_config.py").is_symlink()
    assert "incumbent update_config.py" in (bin_dir / "update_config.py").read_text()


def test_shim_path_unit_watches_both_entry_points():
    path_unit = unit("vragent-shims.path")
    assert set(path_unit["Path"]["PathChanged"]) == {"/opt/cloud/bin/update_config.py", "/opt/cloud/bin/vr_cfg.sh",
                                                     "/opt/cloud/bin/configure.py",
                                                     "/opt/cloud/bin/netusage.sh", "/opt/cloud/bin/vpc_netusage.sh",
                                                     "/opt/cloud/bin/checkrouter.sh", "/opt/cloud/bin/checkbatchs2svpn.sh"}
    assert one(path_unit["Path"], "Unit") == "vragent-shims.service"
    service = unit("vragent-shims.service")
    assert "RemainAfterExit" not in service["Service"], "the path unit must be able to start it again"
    assert "cloud-early-config.service" in words(service["Unit"], "After")
    assert "cloud-postinit.service" in words(service["Unit"], "Before")


def test_postinit_restore_of_the_incumbents_rules_is_made_harmless(tmp_path):
    rules = tmp_path / "etc/iptables/rules.v4"
    rules.parent.mkdir(parents=True)
    rules.write_text("*filter\n:INPUT DROP [0:0]\n-A INPUT -i eth0 -j ACCEPT\nCOMMIT\n")
    run_helper("neutralize-rules-v4", env={"VRAGENT_ROOT": str(tmp_path)})
    assert all(line.startswith("#") for line in rules.read_text().splitlines())
    drop_in = read_unit(SYSTEMD / "cloud-postinit.service.d/vragent.conf")
    assert drop_in["Service"]["ExecStartPre"] == ["-/usr/lib/vragent/neutralize-rules-v4"]


# --- keepalived clean-up ------------------------------------------------------------------

KEEPALIVED_CONF = """\
! generated
vrrp_instance inside_network {
    state BACKUP
    interface eth0   # guest NIC
    virtual_router_id 51
    virtual_ipaddress {
        192.0.2.1/24 brd 192.0.2.255 dev eth0
    }
    virtual_ipaddress_excluded {
        198.51.100.10/24 dev eth2
        203.0.113.5 dev eth2
        2001:db8::1
    }
}
static_ipaddress {
    10.9.9.9/32 dev eth1
}
"""


def test_keepalived_vips_are_read_from_the_configuration_it_ran():
    vips_module = load_helper("keepalived-vips")
    vips, vmacs = vips_module.parse(KEEPALIVED_CONF)
    assert [(v.address, v.device) for v in vips] == [
        ("192.0.2.1/24", "eth0"), ("198.51.100.10/24", "eth2"), ("203.0.113.5/32", "eth2"), ("2001:db8::1/128", "eth0")]
    assert vmacs == []


def test_keepalived_vmac_instances_lose_their_interface():
    vips_module = load_helper("keepalived-vips")
    vips, vmacs = vips_module.parse("vrrp_instance v { interface eth3\n virtual_router_id 7\n use_vmac\n"
                                    " virtual_ipaddress { 10.0.0.1/24 }\n}\n")
    assert [(v.address, v.device) for v in vips] == [("10.0.0.1/24", "vrrp.7")]
    assert [m.device for m in vmacs] == ["vrrp.7"]


def test_releasing_deletes_each_vip_and_tolerates_absent_ones():
    vips_module = load_helper("keepalived-vips")
    calls = []

    def run(argv, **_):
        calls.append(argv)
        return subprocess.CompletedProcess(argv, 0 if "192.0.2.1/24" in argv else 2)

    vips, vmacs = vips_module.parse(KEEPALIVED_CONF)
    assert vips_module.release(vips, vmacs, run=run) == ["192.0.2.1/24 on eth0"]
    assert ["ip", "-4", "addr", "del", "192.0.2.1/24", "dev", "eth0"] in calls
    assert ["ip", "-6", "addr", "del", "2001:db8::1/128", "dev", "eth0"] in calls


def test_release_uses_the_snapshot_not_a_rewritten_configuration(tmp_path):
    live = tmp_path / "etc/keepalived/keepalived.conf"
    live.parent.mkdir(parents=True)
    live.write_text(KEEPALIVED_CONF)
    env = {"VRAGENT_ROOT": str(tmp_path)}
    run_helper("keepalived-vips", "snapshot", env=env)
    live.write_text("vrrp_instance x {\n interface eth0\n virtual_ipaddress {\n 192.0.2.99/24\n }\n}\n")
    listed = run_helper("keepalived-vips", "list", str(tmp_path / "run/vragent/keepalived.running.conf"), env=env)
    assert "192.0.2.1/24 dev eth0" in listed.stdout and "192.0.2.99" not in listed.stdout


# --- ssh, logs, Debian metadata ---------------------------------------------------------------


def test_sshd_drop_in_is_port_3922_keys_only_bound_at_runtime():
    settings = {}
    for line in (PACKAGING / "sshd_config.d/vragent.conf").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, value = line.split(None, 1)
            settings[key] = value
    assert settings["Port"] == "3922"
    assert settings["PasswordAuthentication"] == "no"
    assert settings["KbdInteractiveAuthentication"] == "no"
    assert settings["PubkeyAuthentication"] == "yes"
    assert settings["PermitRootLogin"] == "prohibit-password"
    assert settings["Include"] == "/run/vragent/sshd_config.d/*.conf"
    drop_in = read_unit(SYSTEMD / "ssh.service.d/vragent.conf")["Service"]["ExecStartPre"]
    assert drop_in == ["", "-/usr/lib/vragent/sshd-listen", "/usr/sbin/sshd -t"]


def test_sshd_listens_on_the_control_nic_address(tmp_path):
    run_helper("sshd-listen", env={"VRAGENT_ROOT": str(tmp_path), "VRAGENT_CONTROL_DEVICE": "lo"})
    assert "ListenAddress 127.0.0.1" in (tmp_path / "run/vragent/sshd_config.d/listen.conf").read_text()
    run_helper("sshd-listen", env={"VRAGENT_ROOT": str(tmp_path), "VRAGENT_CONTROL_DEVICE": "nosuchnic0"})
    assert not (tmp_path / "run/vragent/sshd_config.d/listen.conf").exists()


def test_logrotate_moves_the_log_and_lets_the_agent_reopen_it():
    rule = (DEBIAN / "vragent.logrotate").read_text()
    assert rule.startswith("/var/log/cloud-scripts.log {")
    directives = {line.split()[0] for line in rule.splitlines()[1:] if line.strip() and not line.strip().startswith("#")}
    assert "copytruncate" not in directives  # WatchedFileHandler reopens a moved file
    assert {"rotate", "maxsize", "compress", "missingok", "create"} <= directives


def test_runtime_directory_is_created_at_boot():
    assert "d /run/vragent 0755 root root -" in (DEBIAN / "vragent.tmpfiles").read_text().splitlines()


def _control_field(name: str) -> set[str]:
    text = (DEBIAN / "control").read_text()
    match = re.search(rf"^{name}:(.*(?:\n[ \t].*)*)", text, re.MULTILINE)
    return {item.strip().split()[0] for item in match.group(1).split(",") if item.strip()}


def test_runtime_dependencies_are_debian_packages():
    depends = _control_field("Depends")
    assert {"python3", "python3-jinja2", "python3-pyroute2", "iptables", "iproute2", "conntrack", "dnsmasq-base",
            "dnsmasq-utils", "haproxy", "keepalived", "conntrackd", "iputils-arping", "radvd"} <= depends
    assert "python3-systemd" in _control_field("Recommends")


def test_package_version_is_the_agents():
    first = (DEBIAN / "changelog").read_text().splitlines()[0]
    assert first.startswith(f"vragent ({__version__})")


def test_every_file_the_package_installs_exists():
    for line in (DEBIAN / "vragent.install").read_text().splitlines():
        if line.strip():
            source = line.split()[0]
            assert list(REPO.glob(source)), source
    for listing in ("vragent.manpages", "vragent.docs"):
        for source in (DEBIAN / listing).read_text().split():
            assert (REPO / source).is_file(), source


def test_maintainer_scripts_are_posix_shell():
    for name in ("postinst", "prerm", "postrm", "rules"):
        assert os.access(DEBIAN / name, os.X_OK), name
    for script in [DEBIAN / "postinst", DEBIAN / "prerm", DEBIAN / "postrm",
                   *(p for p in HELPERS.iterdir() if p.read_text().startswith("#!/bin/sh"))]:
        subprocess.run(["sh", "-n", str(script)], check=True)


# --- the package itself (slow) ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(os.environ.get("VRAGENT_BUILD_DEB") != "1", reason="set VRAGENT_BUILD_DEB=1 to build the .deb")
@pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="not a Debian system")
def test_the_deb_builds_and_ships_everything(tmp_path):
    # packaging/build-deb.sh: a clean copy of the checkout, dpkg-buildpackage -us -uc -b, lintian.
    built = subprocess.run([str(PACKAGING / "build-deb.sh"), str(tmp_path)], capture_output=True, text=True,
                           timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]
    deb = tmp_path / f"vragent_{__version__}_all.deb"
    listing = subprocess.run(["dpkg-deb", "-c", str(deb)], capture_output=True, text=True, check=True).stdout
    modes = {line.split()[5].removeprefix("."): line.split()[0] for line in listing.splitlines()}
    shipped = set(modes)
    for helper in ("fail-closed", "install-shims", "keepalived-vips", "sshd-listen", "neutralize-rules-v4",
                   "shims/update_config.py", "shims/vr_cfg.sh", "shims/configure.py", "shims/netusage.sh", "shims/checkrouter.sh",
                   "shims/checkbatchs2svpn.sh"):
        assert modes[f"/usr/lib/vragent/{helper}"] == "-rwxr-xr-x", helper
    assert modes["/usr/lib/vragent/shims/vpc_netusage.sh"].startswith("l")  # netusage.sh under the VPC's name
    assert {
        "/usr/bin/vragent",
        "/usr/lib/python3/dist-packages/vragent/schema/state.schema.json",
        "/usr/share/vragent/templates/",
        "/usr/lib/vragent/shims/update_config.py",
        "/usr/lib/vragent/shims/vr_cfg.sh",
        "/usr/lib/vragent/fail-closed",
        "/usr/lib/vragent/keepalived-vips",
        "/lib/systemd/system/vragent-restore.service",
        "/lib/systemd/system/vragent-fail-closed.service",
        "/lib/systemd/system/vragent-keepalived.service",
        "/lib/systemd/system/vragent-shims.path",
        "/etc/ssh/sshd_config.d/vragent.conf",
        "/etc/logrotate.d/vragent",
        "/usr/share/man/man8/vragent.8.gz",
        "/usr/share/doc/vragent/IMAGE-BUILDERS.md",  # uncompressed: the units' Documentation= names it
    } <= shipped
    templates = REPO / "templates"
    for template in (templates.rglob("*") if templates.is_dir() else ()):
        if template.is_file():
            assert f"/usr/share/vragent/templates/{template.relative_to(templates)}" in shipped
