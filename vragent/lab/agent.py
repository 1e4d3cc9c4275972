"""Drive the real agent inside a lab router namespace, exactly as it runs on a VR."""

from __future__ import annotations

import json
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vragent.shell import guard
from vragent.lab import sample
from vragent.lab.topology import Lab
from vragent.paths import Paths


@dataclass
class ApplyResult:
    returncode: int
    result: dict[str, Any]
    stdout: str
    stderr: str

    @property
    def steps(self) -> list[dict]:
        return self.result.get("steps", [])

    @property
    def errors(self) -> list[str]:
        return [f"{e['path']}: {e['message']}" if e["path"] else e["message"] for e in self.result.get("errors", [])]

    def kinds(self) -> set[str]:
        return {step["kind"] for step in self.steps}


class RouterAgent:
    """`vragent --root ROOT ...` run with `ip netns exec` in one router namespace."""

    def __init__(self, lab: Lab, root: Path, role: str = "vr", python: str | None = None):
        self.lab, self.root, self.role = lab, Path(root), role
        self.python = python or sys.executable
        self.pushes = self.root / "pushes"
        self.pushes.mkdir(parents=True, exist_ok=True)
        # This root configures that namespace and no other (vragent.shell.guard): `--root` alone,
        # run outside the namespace, refuses instead of configuring the host.
        guard.mark(Paths.from_root(self.root), lab.ns(role))
        self.env: dict[str, str] = {}  # extra environment, e.g. PATH with a fault injector first

    def command(self, *args: str) -> list[str]:
        env = ["env", *(f"{k}={v}" for k, v in self.env.items())] if self.env else []
        return [*env, self.python, "-m", "vragent", "--root", str(self.root), *args]

    def run(self, *args: str, timeout: float = 120.0, input: str | None = None):
        return self.lab.run(self.role, self.command(*args), check=False, timeout=timeout, input=input)

    def write_push(self, payload: dict | str, name: str | None = None) -> Path:
        if isinstance(payload, str):
            name = name or sample.batch_file_name()
            text = payload
        else:
            name = name or sample.push_file_name(payload)
            text = sample.wire_json(payload)
        path = self.pushes / name
        path.write_text(text)
        return path

    def apply(self, *payloads: dict | str | Path, dry_run: bool = False, full: bool = False) -> ApplyResult:
        """Apply payloads (dicts in wire format, batch texts, or existing files) as one push."""
        files = [p if isinstance(p, Path) else self.write_push(p) for p in payloads]
        args = ["apply", "--json", *(["--dry-run"] if dry_run else []), *(["--full"] if full else []),
                *map(str, files)]
        proc = self.run(*args)
        try:
            result = json.loads(proc.stdout.strip().splitlines()[-1]) if proc.stdout.strip() else {}
        except json.JSONDecodeError:
            result = {}
        return ApplyResult(proc.returncode, result, proc.stdout, proc.stderr)

    def reapply(self, *payloads: dict | str | Path) -> list[ApplyResult]:
        """The same push again, twice: as the agent remembers things, and with --full (every
        table read back and compared). A converged router changes nothing either way."""
        return [self.apply(*payloads), self.apply(*payloads, full=True)]

    def dry_run_text(self, *payloads: dict | str) -> str:
        files = [self.write_push(p) for p in payloads]
        return self.run("apply", "--dry-run", *map(str, files)).stdout

    def show(self) -> dict:
        return json.loads(self.run("show").stdout or "{}")

    def iptables_save(self) -> str:
        """The router's ruleset without counters or timestamps, for before/after comparisons."""
        text = self.lab.run(self.role, ["iptables-save"]).stdout
        return "\n".join(line for line in text.splitlines() if not line.startswith("#")) + "\n"

    def clean(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
