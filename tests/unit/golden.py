"""Golden files: one JSON file per case holding its input and the full expected output.

Regenerate after an intended change with VRAGENT_UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Callable


def check(case: Path, render: Callable[[dict], dict]) -> None:
    """Render the case (its pushes and any other inputs it holds) and compare with (or, when
    updating, record) its expectation."""
    data = json.loads(case.read_text())
    rendered = render(data)
    if os.environ.get("VRAGENT_UPDATE_GOLDEN"):
        data["expected"] = rendered
        case.write_text(json.dumps(data, indent=1) + "\n")
    assert rendered == data["expected"]
