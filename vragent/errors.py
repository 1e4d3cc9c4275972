"""Errors as values: every problem in a push is collected with its JSON path."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ValidationError:
    path: str  # e.g. "firewall_rules.json.3f0c:$.rules[2].source_cidr_list[0]"
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


class InvalidInput(Exception):
    """The push is malformed or inconsistent; nothing was changed (exit 2)."""

    def __init__(self, errors: list[ValidationError]):
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors))


class ApplyFailed(Exception):
    """Committing failed; completed steps were rolled back (exit 1)."""


class LockTimeout(ApplyFailed):
    """Another apply held the lock for longer than we were willing to wait."""


def origin_of(origins: dict[int, tuple[object, str]], item: object, fallback: str) -> str:
    """The JSON path an item of the state came from in this push, else `fallback`."""
    found = origins.get(id(item))
    return found[1] if found is not None and found[0] is item else fallback
