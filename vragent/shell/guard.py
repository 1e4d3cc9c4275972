"""Is the network namespace the agent runs in a router's? (`--root` is not a sandbox.)

`--root DIR` relocates files only: links, addresses, routes, sysctls and netfilter tables
are those of the namespace the process runs in. On an ordinary machine an apply of a
cmdline would take the machine's own eth0 addresses, default route and INPUT policy.
So acting on them needs the namespace to be marked a router's (Paths.router_marker):

  machine       the whole machine is the router (the system VM image sets it)
  netns NAME    only the namespace `ip netns` calls NAME is (the lab sets it per router);
                run anywhere else (say, the same --root without `ip netns exec`) it refuses

or the operator's explicit `--this-is-the-router`. Without either, the command refuses
(exit 2, nothing changed) and says why.
"""

from __future__ import annotations

import os
from pathlib import Path

from vragent.paths import Paths

NETNS_DIR = Path("/run/netns")
OPT_IN = "--this-is-the-router"
REFUSING = "refusing to change this machine's network"


class NotARouter(Exception):
    """The namespace is not known to be a router's: nothing may be changed (exit 2)."""


def mark(paths: Paths, netns: str | None = None) -> Path:
    """Write the marker: the whole machine (`netns=None`), or one named namespace."""
    paths.router_marker.parent.mkdir(parents=True, exist_ok=True)
    paths.router_marker.write_text("machine\n" if netns is None else f"netns {netns}\n")
    return paths.router_marker


def _current_netns() -> tuple[int, int] | None:
    try:
        info = os.stat("/proc/self/ns/net")
    except OSError:
        return None
    return info.st_dev, info.st_ino


def _named_netns(name: str) -> tuple[int, int] | None:
    try:
        info = os.stat(NETNS_DIR / name)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def refusal(paths: Paths) -> str | None:
    """Why this namespace must not be configured from `paths`, or None when it may."""
    marker = paths.router_marker
    try:
        text = marker.read_text().strip()
    except FileNotFoundError:
        return (f"{REFUSING}: {marker} does not exist, so this network namespace "
                f"is not known to be a router's (--root {paths.root} relocates files only; links, addresses, "
                f"routes, sysctls and iptables are this namespace's). Run inside the router's namespace "
                f"(ip netns exec) with that marker, or pass {OPT_IN} if this really is the router")
    except OSError as exc:
        return f"{REFUSING}: cannot read {marker} ({exc.strerror})"
    words = text.split()
    if words == ["machine"]:
        return None
    if len(words) == 2 and words[0] == "netns":
        name = words[1]
        wanted, current = _named_netns(name), _current_netns()
        if wanted is None:
            return (f"{REFUSING}: {marker} marks the network namespace {name} "
                    f"as the router's, and it does not exist (any more)")
        if wanted != current:
            return (f"{REFUSING}: {marker} marks the network namespace {name} "
                    f"as the router's, and this process runs in another one; use `ip netns exec {name} ...`")
        return None
    return (f"{REFUSING}: {marker} says {text!r}; "
            "expected `machine` or `netns NAME`")
