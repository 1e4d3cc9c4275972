"""What the management server's HAProxy configuration may hold: the lines its generator
(HAProxyConfigurator) can emit, checked one by one before anything else reads them.

`haproxy -c` checks that a file is HAProxy; it does not check that the file is what the
management server would have written. A push with `program`, `lua-load`,
`external-check command` or `setenv` lines is valid HAProxy that runs code on the router,
so every line must be one of the generator's forms: its section headers, its fixed
global and defaults lines with their few variable numbers, and its listener lines (bind,
server, balance, stickiness, ACLs, stats). Values are single tokens without quotes,
backslashes (but for the stats realm's escaped space), '$', '#' or ';' (pure).
"""

from __future__ import annotations

import re

# One word of a value: addresses, ports, names, paths, cipher lists, sizes, cookie names.
_T = r"[A-Za-z0-9_.:/,@%+=!*~^?&\[\]-]+"
_WORDS = rf"{_T}(?:[ \t]+{_T})*"
_OPTIONS = ("dontlognull|redispatch|forwardfor|httpclose|transparent|http-keep-alive|forceclose|"
            "http-server-close|httplog|tcplog|abortonclose")

# keyword -> what may follow it on its line (a regular expression of the rest, '' for nothing).
_FORMS = {
    "global": "", "defaults": "", "daemon": "",
    "listen": _T, "frontend": _T, "backend": _T,
    "log": _WORDS,
    "maxconn": r"[0-9]{1,9}", "maxpipes": r"[0-9]{1,9}", "retries": r"[0-9]{1,4}",
    "tune.ssl.default-dh-param": r"[0-9]{1,5}",
    "chroot": _T, "user": _T, "group": _T,
    "stats": rf"(?:socket[ \t]+{_WORDS}|enable|uri[ \t]+{_T}|realm[ \t]+(?:{_T}|\\ )+|auth[ \t]+{_T}|hide-version"
             rf"|refresh[ \t]+{_T})",
    "mode": r"(?:http|tcp)",
    "option": rf"(?:{_OPTIONS})",
    "no": rf"option[ \t]+(?:{_OPTIONS})",
    "timeout": rf"[a-z-]+[ \t]+{_T}",
    "bind": _WORDS,
    "balance": _T,
    "server": rf"{_T}[ \t]+{_WORDS}",
    "cookie": _WORDS,
    "appsession": _WORDS,
    "stick-table": _WORDS,
    "stick": r"on[ \t]+src",
    "http-request": r"add-header[ \t]+X-Forwarded-Proto[ \t]+https",
    "acl": rf"network_allowed[ \t]+src[ \t]+{_WORDS}",
    "tcp-request": r"connection[ \t]+reject[ \t]+if[ \t]+!network_allowed",
}
_LINE = re.compile(r"^[ \t]*(\S+)(?:[ \t]+(.*?))?[ \t]*$")
_COMPILED = {keyword: re.compile(f"^(?:{rest})$") for keyword, rest in _FORMS.items()}


def problem(line: str) -> str | None:
    """Why `line` is no line HAProxyConfigurator emits (None: it may be one)."""
    if not line.strip():
        return None  # its blank lines are "\t "
    match = _LINE.match(line)
    if match is None:
        return "is not a configuration line"
    keyword, rest = match.group(1), match.group(2) or ""
    form = _COMPILED.get(keyword)
    if form is None:
        return (f"{keyword[:40]!r} is not a directive the management server's HAProxy generator emits "
                "(HAProxyConfigurator)")
    if not form.match(rest):
        return f"{line.strip()[:120]!r} is not a {keyword!r} line the management server's HAProxy generator emits"
    return None
