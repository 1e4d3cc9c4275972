"""`vmpassword` (vm_password.json): a VM's new password, for the password server to hand out.

The password is not desired state: it is handed to the password server during the apply
(subsystems/guestdata/render.py, PasswordHandoverStep) and kept only in the server's own file until
the VM acknowledges it. It never reaches state.json, a dry-run diff or a log line, and
no error message repeats it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from vragent.model import PasswordOffer, RouterState
from vragent.fields import Fields

# Bodies the password protocol gives a meaning of their own (cloudstack-vr-wave2.md §2.4):
# a VM would take either for "no password" or an error, never as its password.
RESERVED = ("saved_password", "bad_request")
# The management server pushes the literal "saved_password" whenever a VM starts from a
# template without password (UserVmManagerImpl.getCurrentVmPasswordOrDefineNewPassword):
# the VM has no new password, and the incumbent's server then answers "saved_password".
# It withdraws whatever password was still pending for that VM.
NO_NEW_PASSWORD = "saved_password"


@dataclass(frozen=True)
class PasswordChange:
    offer: PasswordOffer
    path: str


def parse(fields: Fields) -> PasswordChange | None:
    ip = fields.ipv4("ip_address")
    password = fields.raw("password")
    if password is not None and not isinstance(password, str):
        fields.error("password", "expected a string")
        password = None
    elif password is not None:
        if not password:
            fields.error("password", "is empty")
            password = None
        elif not password.isprintable() or len(password) > 512:
            # Guests read it as the whole body of a reply (cloud-init through a shell).
            fields.error("password", "must be at most 512 printable characters on one line (not shown)")
            password = None
        elif password == NO_NEW_PASSWORD:
            pass
        elif password in RESERVED:
            fields.error("password", f"may not be {password!r}: guests read that body as a protocol answer")
            password = None
    if ip is None or password is None:
        return None
    return PasswordChange(PasswordOffer(ip, None if password == NO_NEW_PASSWORD else password), fields.path)


def merge(state: RouterState, change: PasswordChange) -> RouterState:
    """The last password pushed for a VM in this push wins."""
    offers = [o for o in state.password_offers if o.ip != change.offer.ip]
    offers.append(change.offer)
    return replace(state, password_offers=tuple(sorted(offers, key=lambda o: o.ip)))


def origins(change: PasswordChange) -> list[tuple[object, str]]:
    return [(change.offer, change.path)]
