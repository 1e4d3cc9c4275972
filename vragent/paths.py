"""Every path the agent reads or writes, under one relocatable root.

`--root DIR` or VRAGENT_ROOT moves all of them, so the whole agent runs for real
inside `ip netns exec NS` on a lab or CI machine. Kernel interfaces (/proc/sys) are
per network namespace already and are not relocated.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def from_root(cls, root: str | os.PathLike | None = None) -> "Paths":
        chosen = root if root is not None else os.environ.get("VRAGENT_ROOT") or "/"
        return cls(Path(chosen).resolve())

    def under(self, relative: str) -> Path:
        return self.root / relative.lstrip("/")

    @property
    def state(self) -> Path:
        return self.under("var/lib/vragent/state.json")

    @property
    def log(self) -> Path:
        return self.under("var/log/cloud-scripts.log")

    @property
    def lock(self) -> Path:
        return self.under("run/vragent/apply.lock")

    @property
    def router_marker(self) -> Path:
        """Says that the network namespace the agent runs in is a router's (vragent.shell.guard).

        One line: `machine` (the whole machine is the router: the system VM image sets it) or
        `netns NAME` (only the namespace /run/netns/NAME is: the lab sets it). Without it the
        agent refuses to touch links, addresses, routes, sysctls and netfilter tables unless
        told `--this-is-the-router`, so `--root DIR` on an ordinary machine cannot cut it off.
        """
        return self.under("etc/vragent/this-is-a-router")

    @property
    def run_dir(self) -> Path:
        return self.under("run/vragent")

    @property
    def cache(self) -> Path:
        """Where the management server drops pushed files (/var/cache/cloud)."""
        return self.under("var/cache/cloud")

    @property
    def processed(self) -> Path:
        return self.cache / "processed"


def proc_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")
