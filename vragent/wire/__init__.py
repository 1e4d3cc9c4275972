"""CloudStack wire format: pushes in, changes of `RouterState` out.

A push is one of:
- a single config file as the management server writes it (`firewall_rules.json.<uuid>`,
  JSON with a `type`),
- an aggregated `VR-<uuid>.cfg` batch of such files (applied as one transaction),
- a native vragent document (`{"format": "vragent/1", ...}`), a full replacement.

Each CloudStack type has one module here with a pure `parse()` (payload -> typed
change, collecting errors with JSON paths) and a pure `merge()` (state + change ->
state) that keeps the incumbent's add/revoke/remove semantics.
"""

from __future__ import annotations

from vragent.wire.intake import Document, load_push, merge_documents

__all__ = ["Document", "load_push", "merge_documents"]
