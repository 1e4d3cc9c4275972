"""`vpnuserlist` (vpn_user_list.json): the remote-access VPN's users.

`vpn_users` is a list of `{user, password, add}` (cloudstack-vr.md §2.3). `add: true`
adds the user or, unlike the incumbent (which kept the old line when a user came back
with a new password), replaces its password; `add: false` removes it. Users the push
does not name are kept, as the incumbent keeps them. Each user is one line of pppd's
chap-secrets, so names and passwords are refused when they could break that file
(whitespace, quotes, backslashes, control characters, a name of `*`).

Passwords are secrets: no error message repeats one; they reach only the state (mode
0600) and chap-secrets (mode 0600), and diffs and archives mask them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from vragent.model import RouterState, VpnUser
from vragent.fields import Fields

# The management server allows [a-zA-Z0-9][a-zA-Z0-9@._-]{2,63}; vragent takes shorter
# names too, never anything pppd would read as a wildcard, a comment or two words.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9@._-]{0,63}$")
PASSWORD_MAX = 128


@dataclass(frozen=True)
class UsersChange:
    upsert: tuple[tuple[VpnUser, str], ...]  # (user, JSON path)
    remove: tuple[str, ...]


def password_problem(value: object) -> str | None:
    """Why `value` cannot be a chap-secrets password (the password is never repeated)."""
    if not isinstance(value, str):
        return "expected a string"
    if not value:
        return "is empty"
    if len(value) > PASSWORD_MAX:
        return f"is longer than {PASSWORD_MAX} characters"
    if (not value.isascii() or not value.isprintable() or any(c.isspace() for c in value)
            or '"' in value or "\\" in value):
        return "must be printable ASCII without spaces, quotes or backslashes (not shown)"
    return None


def valid_name(name: str) -> bool:
    return bool(_NAME.match(name))


def parse(fields: Fields) -> UsersChange | None:
    errors_before = len(fields.errors)
    entries = fields.list("vpn_users", [])
    wanted: dict[str, tuple[VpnUser | None, str]] = {}  # the last entry for a name wins
    for index, raw in enumerate(entries or []):
        item = Fields(raw, f"{fields.at('vpn_users')}[{index}]", fields.errors)
        name = item.string("user")
        add = item.boolean("add", True)
        if name is not None and not valid_name(name):
            item.error("user", f"{name[:64]!r} is not a VPN user name (letters, digits and @._-, "
                               "starting with a letter or digit, at most 64)")
            name = None
        password = item.raw("password", None) if add is False else item.raw("password")
        if add and password is not None and (problem := password_problem(password)) is not None:
            item.error("password", problem)
            password = None
        if name is None or add is None or (add and password is None):
            continue
        wanted[name] = (VpnUser(name, password) if add else None, item.path)
    if len(fields.errors) > errors_before:
        return None
    return UsersChange(tuple((user, path) for user, path in wanted.values() if user is not None),
                       tuple(name for name, (user, _) in wanted.items() if user is None))


def merge(state: RouterState, change: UsersChange) -> RouterState:
    users = {u.name: u for u in state.vpn_users}
    for name in change.remove:
        users.pop(name, None)
    for user, _ in change.upsert:
        users[user.name] = user
    return replace(state, vpn_users=tuple(sorted(users.values(), key=lambda u: u.name)))


def origins(change: UsersChange) -> list[tuple[object, str]]:
    return list(change.upsert)
