"""CloudStack's own system VM scripts, run on a lab router that vragent configured.

The scripts (`../shared/peers/cloudstack-systemvm/debian`, found through the
VRAGENT_CLOUDSTACK_SYSTEMVM setting) are copied into the router's root as CloudStack's
template puts them (`/root/monitorServices.py`, `/root/health_checks/`, `/opt/cloud/bin/`),
then vragent's package step runs (`install-shims`: its shims and health checks replace the
scripts it answers). They read absolute paths (`/etc/monitor.conf`, `/root/...`,
`/run/vragent/dnsmasq.pid`), so each runs in the router's network namespace and a private
mount namespace in which the router's root is where a VR has it:

- `/etc` is an overlay: the router's `etc/` over the machine's (read-only);
- `/root`, `/var`, `/run` and `/opt` are the router's;
- `/usr/lib/python3/dist-packages` also holds `vragent`, as the package installs it;
- `/usr/local/sbin` (first on PATH, in cron's too) holds the lab's stand-ins for what a VR
  has and the lab does not: `service` (a VR's systemd restarts vragent-<name>; in the lab
  `vragent supervise` restarts dead daemons) and `systemctl` for vragent's units;
- `/usr/bin/python` is python3, as the template's python-is-python3 makes it.

Nothing here is copied into vragent: the scripts are CloudStack's test peer.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from vragent.lab.topology import Lab

PEER_SETTING = "VRAGENT_CLOUDSTACK_SYSTEMVM"
REPO = Path(__file__).resolve().parents[2]
PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
RELEASE = "Cloudstack Release 4.22.0 Tue Dec 1 00:00:00 UTC 2026"
SIGNATURE = "0123456789abcdef0123456789abcdef"


def peer_dir() -> Path | None:
    """CloudStack's `systemvm/debian` tree, or None where the setting names none."""
    setting = os.environ.get(PEER_SETTING)
    if not setting:
        return None
    base = Path(setting)
    tree = base / "debian" if (base / "debian").is_dir() else base
    return tree if (tree / "root/monitorServices.py").is_file() else None


def missing_reason() -> str:
    setting = os.environ.get(PEER_SETTING)
    if not setting:
        return f"{PEER_SETTING} is not set (CloudStack's system VM files, ../shared/peers/cloudstack-systemvm)"
    return f"{PEER_SETTING}={setting} holds no CloudStack system VM files (debian/root/monitorServices.py)"


def _stand_ins(root: Path, python: str) -> dict[str, str]:
    agent = f"{shlex.quote(python)} -m vragent --root {shlex.quote(str(root))}"
    return {
        # A VR's `service vragent-<name> restart` is systemd's; the lab's daemons are
        # supervised by vragent itself. Anything else is no unit of this router.
        "service": "#!/bin/sh\n# The lab's stand-in for a VR's service(8).\n"
                   "case \"$1\" in vragent-*) exec " + agent + " supervise --once >/dev/null 2>&1 </dev/null ;; esac\n"
                   "echo \"$1: unrecognized service\" >&2\nexit 1\n",
        "systemctl": "#!/bin/sh\n# The lab's stand-in for systemctl: vragent's units, as supervise keeps them.\n"
                     "unit=${2%.service}\n"
                     "case \"$1 $unit\" in\n"
                     "  \"restart vragent-\"*|\"start vragent-\"*) exec " + agent + " supervise --once >/dev/null 2>&1 </dev/null ;;\n"
                     "  \"is-active vragent-\"*) pid=/run/vragent/${unit#vragent-}.pid\n"
                     "     if [ -f \"$pid\" ] && kill -0 \"$(cat \"$pid\")\" 2>/dev/null; then echo active; exit 0; fi\n"
                     "     echo inactive; exit 3 ;;\n"
                     "esac\necho \"systemctl $*: not in the lab\" >&2\nexit 1\n",
    }


class CloudStackRouter:
    """A lab router's root with CloudStack's scripts and vragent's package step in place."""

    def __init__(self, lab: Lab, root: Path, role: str = "vr", peer: Path | None = None,
                 python: str | None = None):
        self.lab, self.root, self.role = lab, Path(root), role
        self.peer = peer or peer_dir()
        if self.peer is None:
            raise RuntimeError(missing_reason())
        self.python = python or sys.executable
        self.install()

    def install(self) -> None:
        root = self.root
        for relative in ("root", "var/log", "var/cache/cloud", "var/spool/cron/crontabs", "run/vragent", "etc"):
            (root / relative).mkdir(parents=True, exist_ok=True)
        if not (root / "var/run").is_symlink():
            (root / "var/run").symlink_to("/run")  # as on Debian (pidfiles named /var/run/...)
        shutil.copy2(self.peer / "root/monitorServices.py", root / "root/monitorServices.py")
        shutil.copytree(self.peer / "root/health_checks", root / "root/health_checks", dirs_exist_ok=True)
        for check in (root / "root/health_checks").iterdir():  # the template's `chmod +x /root/health_checks/*`
            check.chmod(0o755)
        shutil.copytree(self.peer / "opt/cloud/bin", root / "opt/cloud/bin", dirs_exist_ok=True)
        for script in (root / "opt/cloud/bin").iterdir():  # cloud-scripts.tgz's scripts are executable
            if script.is_file():
                script.chmod(0o755)
        # What CloudStack's template build and boot write (get_template_version.sh, router_version_check.py).
        (root / "etc/cloudstack-release").write_text(RELEASE + "\n")
        (root / "var/cache/cloud/cloud-scripts-signature").write_text(SIGNATURE + "\n")
        (root / "var/cache/cloud/boot_up_done").touch()
        env = {**os.environ, "VRAGENT_ROOT": str(root), "VRAGENT_SHIMS": str(REPO / "packaging"),
               "VRAGENT_HEALTH_CHECKS": str(REPO / "packaging/health_checks")}
        subprocess.run(["sh", str(REPO / "packaging/lib/install-shims"), "install"], env=env, check=True,
                       capture_output=True, timeout=30)
        lab_bin = root / ".lab/sbin"
        lab_bin.mkdir(parents=True, exist_ok=True)
        for name, text in _stand_ins(root, self.python).items():
            (lab_bin / name).write_text(text)
            (lab_bin / name).chmod(0o755)
        # The template's python-is-python3 (CloudStack's scripts start with #!/usr/bin/python).
        usr_bin = root / ".lab/usr-bin"
        usr_bin.mkdir(parents=True, exist_ok=True)
        if not (usr_bin / "python").is_symlink():
            (usr_bin / "python").symlink_to("/usr/bin/python3")
        # The package's module, where Debian's python3 finds it.
        pylib = root / ".lab/dist-packages"
        pylib.mkdir(parents=True, exist_ok=True)
        link = pylib / "vragent"
        if not link.is_symlink():
            link.symlink_to(REPO / "vragent")

    def _mounts(self) -> str:
        r = shlex.quote(str(self.root))
        return " && ".join([
            f"mount -t overlay overlay -o lowerdir={r}/etc:/etc /etc",
            f"mount --bind {r}/root /root",
            f"mount --bind {r}/var /var",
            # The router's /run, with the host's named namespaces still in it: the agent's guard
            # (shell/guard.py) checks that it runs in the namespace its marker names.
            f"mkdir -p {r}/run/netns && mount --rbind /run/netns {r}/run/netns",
            f"mount --rbind {r}/run /run",
            f"mount -t overlay overlay -o lowerdir={r}/.lab/dist-packages:/usr/lib/python3/dist-packages "
            "/usr/lib/python3/dist-packages",
            f"mount --bind {r}/.lab/sbin /usr/local/sbin",
            f"mount -t overlay overlay -o lowerdir={r}/.lab/usr-bin:/usr/bin /usr/bin",
            f"mount --bind {r}/opt /opt",
        ])

    def command(self, argv: list[str], extra_mounts: str = "") -> list[str]:
        script = self._mounts() + (f" && {extra_mounts}" if extra_mounts else "") + ' && cd /root && exec "$@"'
        return ["unshare", "--mount", "--propagation", "private", "env", "-i", f"PATH={PATH}", "HOME=/root",
                "LANG=C.UTF-8",
                # vragent's own processes (shims, checks) use the lab's relocated root directly.
                f"VRAGENT_ROOT={self.root}", "sh", "-c", script, "sh", *argv]

    def run(self, argv: list[str], timeout: float = 120.0, check: bool = False,
            extra_mounts: str = "") -> subprocess.CompletedProcess:
        """argv on the router as the management server's SSH session runs it."""
        return self.lab.run(self.role, self.command(argv, extra_mounts), check=check, timeout=timeout)

    def popen(self, argv: list[str], extra_mounts: str = "", **kwargs) -> subprocess.Popen:
        return self.lab.popen(self.role, self.command(argv, extra_mounts), **kwargs)

    def script(self, name: str, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
        """/opt/cloud/bin/NAME ARGS..., the way VirtualRoutingResource calls it."""
        return self.run([f"/opt/cloud/bin/{name}", *args], timeout=timeout)
