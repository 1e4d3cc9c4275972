"""The record of the last apply that changed the router, or failed to (read by `status`)."""

from __future__ import annotations

import json
import time
from pathlib import Path

from vragent.paths import Paths
from vragent.shell import files


def last_apply_path(paths: Paths) -> Path:
    return paths.under("var/lib/vragent/last-apply.json")


def record_apply(paths: Paths, result) -> None:
    """Kept for status: the last push that changed the router, or failed to."""
    record = {"push": result.push, "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "status": result.status,
              "steps": len(result.steps), "duration_ms": round(result.duration_ms, 1),
              "errors": [e["message"] for e in result.errors][:5]}
    files.atomic_write(last_apply_path(paths), json.dumps(record) + "\n", 0o600)
