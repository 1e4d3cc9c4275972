"""VM metadata and password offers (pure)."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv4Address


@dataclass(frozen=True)
class VmData:
    """What one guest VM reads from the router's metadata service (CloudStack `vmdata`).

    Served over HTTP to requests from `ip` only (subsystems/guestdata/render.py, metadata_server.py).
    """

    ip: IPv4Address
    userdata: bytes | None = None  # decoded; None: no user-data (404)
    # (key, value) in the order pushed: the manifest lists exactly these keys. Keys are
    # unique case-insensitively (the paths guests request are matched that way).
    metadata: tuple[tuple[str, str], ...] = ()

    @property
    def empty(self) -> bool:
        return self.userdata is None and not self.metadata


@dataclass(frozen=True)
class PasswordOffer:
    """A VM's new password (CloudStack `vmpassword`), handed to the password server during
    the apply of its push and never persisted in the state: the server keeps it (its own
    file, mode 0600) until the VM acknowledges it. None: the VM has none (a pending one is
    withdrawn)."""

    ip: IPv4Address
    password: str | None = field(repr=False)
