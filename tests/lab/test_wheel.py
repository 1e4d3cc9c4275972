"""`pip install .` gives a working agent: the wheel carries its templates and schema.

The wheel is built from a copy of the checkout and installed into a fresh venv, offline
(no index, no build isolation: Debian's setuptools and wheel; Debian's jinja2 and pyroute2
through the system site packages, as the VR image has them). That venv's agent, not the
checkout's, then configures a lab router with pushes that render every template.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from vragent.lab import sample
from vragent.lab import sample_lb as lb
from vragent.lab.agent import RouterAgent
from vragent.lab.cli import sample_network
from vragent.lab.topology import EXTRA_PUBLIC_IPS, VM1_IP, VM2_IP

REPO = Path(__file__).resolve().parents[2]
TEMPLATES = sorted(p.name for p in (REPO / "templates").glob("*.j2"))


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("wheel")
    source = work / "src"
    tracked = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                             capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, tracked):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(work / "venv")], check=True)
    python = work / "venv/bin/python"
    installed = subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-index",
                                "--no-build-isolation", str(source)], capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    shutil.rmtree(source)  # nothing of the checkout is left to fall back on
    return python


def test_the_wheel_holds_every_template_and_the_schema(venv_python):
    probe = ("import vragent, vragent.templating as t, pathlib; print(vragent.__file__); "
             "print(*[d for d in t.template_dirs()], sep='\\n'); "
             "print((pathlib.Path(vragent.__file__).parent / 'schema/state.schema.json').is_file())")
    out = subprocess.run([str(venv_python), "-I", "-c", probe], capture_output=True, text=True, check=True,
                         cwd="/").stdout.splitlines()
    venv = venv_python.parent.parent
    assert out[0].startswith(str(venv)) and out[-1] == "True", out
    dirs = [Path(d) for d in out[1:-1]]
    assert dirs == [venv / "share/vragent/templates"], dirs  # the wheel's, nothing else
    assert sorted(p.name for p in dirs[0].glob("*.j2")) == TEMPLATES


def test_a_fresh_venv_agent_applies_pushes_that_render_every_template(lab, tmp_path, venv_python):
    router = RouterAgent(lab, tmp_path / "root", python=str(venv_python))
    router.env = {"PYTHONSAFEPATH": "1"}  # the venv's vragent, never one in the working directory
    lb_ip = EXTRA_PUBLIC_IPS[0]
    applied = router.apply(*sample_network(), sample.guestnetwork(), sample.remote_access_vpn(),
                           sample.vpn_users(("alice", "al1ce-Pw9", True)),
                           sample.firewall_rules(sample.firewall_rule(7, ports=80, public_ip=lb_ip)),
                           lb.loadbalancer(lb.lb_rule(lb_ip, 80, ((VM1_IP, 8080), (VM2_IP, 8080)))))
    assert applied.returncode == 0, (applied.errors, applied.stderr)
    assert {"dnsmasq: start (not running)", "haproxy: start (not running)", "strongswan: start (not running)",
            "xl2tpd: start (not running)"} <= {s["summary"] for s in applied.steps}, applied.steps
    # IPv6 (radvd) and a redundant pair (keepalived, conntrackd): what they would render.
    planned = router.dry_run_text(sample.cmdline(ipv6=True, redundant=True), sample.guestnetwork(redundant=True))
    written = {path.name for path in router.root.rglob("*") if path.is_file()}
    rendered = {name for name in TEMPLATES if name.removesuffix(".j2") in written | _named_in(planned)}
    assert rendered == set(TEMPLATES), (set(TEMPLATES) - rendered, planned[-3000:])


def _named_in(diff: str) -> set[str]:
    return {line.split()[1].rsplit("/", 1)[-1] for line in diff.splitlines() if line.startswith("+++ ")}
