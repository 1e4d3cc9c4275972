"""The renderers' last line of defence: no value may add a line to a daemon's config (pure).

Every value of a push is typed when it is parsed (fields.py: domains, host names,
MACs, addresses, ports, text without control characters). This module checks once more
where values become files, so that a parser that forgot a check cannot hand a daemon a
line of the pusher's choosing (`dhcp-script=` in dnsmasq.conf runs as root):

- `template_value` is the Jinja2 environment's finalize: every `{{ value }}` of every
  template (dnsmasq, keepalived, conntrackd, strongSwan, radvd, xl2tpd, HAProxy's native
  part) must be one line without control characters;
- `line` does the same for values the renderers join into lines themselves (dnsmasq's
  hosts and options, HAProxy's generated lines, chap-secrets);
- `check_files` refuses a rendered file holding a control character other than a line
  break or a tab, or text that is no UTF-8 (a lone surrogate), whatever produced it.

A refusal is InvalidInput (exit 2): nothing has been changed yet when files are rendered.
"""

from __future__ import annotations

import re

from vragent.errors import InvalidInput, ValidationError

_IN_LINE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_IN_LINE_BUT_TABS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_IN_FILE = re.compile("[\x00-\x08\x0b-\x1f\x7f\u2028\u2029\ud800-\udfff]")


def _refuse(where: str, value: str, found: re.Match) -> InvalidInput:
    return InvalidInput([ValidationError(where, f"refused to write {value[:60]!r}: it holds {found.group()!r} "
                                                "(a line break or control character) where a config file "
                                                "takes one line")])


def line(value, where: str = "render", tabs: bool = False) -> str:
    """`value` as text for one line of a config file (a whole line with `tabs`: its
    indentation); InvalidInput if it would break it."""
    text = value if isinstance(value, str) else str(value)
    found = (_IN_LINE_BUT_TABS if tabs else _IN_LINE).search(text)
    if found:
        raise _refuse(where, text, found)
    return text


def template_value(value):
    """Jinja2's finalize: what a `{{ }}` prints (None and non-text pass as they are)."""
    if isinstance(value, str):
        found = _IN_LINE.search(value)
        if found:
            raise _refuse("render:template", value, found)
    return value


def check_files(files) -> None:
    """Every (path, content) of rendered files: line breaks and tabs only, and UTF-8 text."""
    errors = []
    for path, content in files:
        if not isinstance(content, str):
            continue
        found = _IN_FILE.search(content)
        if found:
            line_number = content.count("\n", 0, found.start()) + 1
            errors.append(ValidationError(f"render:{path}", f"line {line_number} holds {found.group()!r}, a control "
                                                            "character no config file of this router may hold"))
    if errors:
        raise InvalidInput(errors)
