"""Check every candidate, commit in plan order, roll back the committed steps on failure."""

from __future__ import annotations

import logging
import time

from vragent.steps import Step
from vragent.errors import ApplyFailed
from vragent.shell.runner import CommandFailed
from vragent.shell import commit


class Transaction:
    def __init__(self, steps: list[Step], logger: logging.Logger):
        self.steps = steps
        self.logger = logger
        self.done: list[Step] = []
        self.status: dict[int, str] = {}

    def check(self) -> None:
        """Run every candidate's checker, all at once: each is a separate process working on
        its own candidate (iptables-restore --test, dnsmasq --test, haproxy -c, ...), so they
        overlap one another and whatever the agent does meanwhile. The first rejection in plan
        order is the one reported."""
        to_check = [step for index, step in enumerate(self.steps)
                    if not (index == 0 and step.commit_is_its_own_check)
                    and commit.has_check(step)]
        # (A first step whose commit is all-or-nothing is not rehearsed: nothing is committed
        # before it, so a failing commit leaves nothing to undo.)
        if not to_check:
            return
        failures: dict[int, Exception] = {}
        if len(to_check) == 1:
            self._check_one(to_check[0], failures)
        else:
            import threading

            threads = [threading.Thread(target=self._check_one, args=(step, failures)) for step in to_check]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        for step in to_check:
            exc = failures.get(id(step))
            if exc is not None:
                self.status[id(step)] = "rejected"
                raise ApplyFailed(f"candidate rejected before any change: {step.summary()}: {exc}") from None

    @staticmethod
    def _check_one(step: Step, failures: dict[int, Exception]) -> None:
        try:
            commit.check(step)
        except (CommandFailed, OSError) as exc:
            failures[id(step)] = exc

    def commit(self) -> None:
        for step in self.steps:
            started = time.monotonic()
            try:
                commit.commit(step)
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
                commit.rollback(step)
                self.status[id(step)] = "rolled back"
            except Exception as exc:  # noqa: BLE001 - keep undoing the rest
                self.status[id(step)] = "rollback failed"
                self.logger.error("rollback of %s failed: %s", step.summary(), exc)
        self.done = []

    def report(self) -> list[dict]:
        return [{"kind": s.kind, "summary": s.summary(), "status": self.status.get(id(s), "not run")}
                for s in self.steps]
