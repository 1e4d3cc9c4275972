"""Check every candidate, commit in plan order, roll back the committed steps on failure."""

from __future__ import annotations

import logging
import time

from vragent.apply.steps import Step
from vragent.errors import ApplyFailed
from vragent.runner import CommandFailed


class Transaction:
    def __init__(self, steps: list[Step], logger: logging.Logger):
        self.steps = steps
        self.logger = logger
        self.done: list[Step] = []
        self.status: dict[int, str] = {}

    def check(self) -> None:
        for index, step in enumerate(self.steps):
            if index == 0 and step.commit_is_its_own_check:
                continue  # rehearsing it would double the work of the biggest step, for nothing
            try:
                step.check()
            except (CommandFailed, OSError) as exc:
                self.status[id(step)] = "rejected"
                raise ApplyFailed(f"candidate rejected before any change: {step.summary()}: {exc}") from None

    def commit(self) -> None:
        for step in self.steps:
            started = time.monotonic()
            try:
                step.commit()
            except Exception as exc:  # noqa: BLE001 - any failure must roll back (pyroute2 raises its own types)
                self.status[id(step)] = "failed"
                self.logger.error("step %s: failed: %s", step.summary(), exc)
                undone = len(self._reversible_done())
                self.rollback(reason=f"{step.summary()} failed")
                raise ApplyFailed(f"{step.summary()} failed: {exc}; rolled back {undone} committed step(s)") from None
            self.done.append(step)
            self.status[id(step)] = "ok"
            self.logger.info("step %s: ok (%.0f ms)", step.summary(), (time.monotonic() - started) * 1000)

    def _reversible_done(self) -> list[Step]:
        return [s for s in self.done if s.reversible]

    def rollback(self, reason: str) -> None:
        self.logger.warning("rolling back %d step(s): %s", len(self.done), reason)
        for step in reversed(self.done):
            if not step.reversible:
                continue
            try:
                step.rollback()
                self.status[id(step)] = "rolled back"
            except Exception as exc:  # noqa: BLE001 - keep undoing the rest
                self.status[id(step)] = "rollback failed"
                self.logger.error("rollback of %s failed: %s", step.summary(), exc)
        self.done = []

    def report(self) -> list[dict]:
        return [{"kind": s.kind, "summary": s.summary(), "status": self.status.get(id(s), "not run")}
                for s in self.steps]
