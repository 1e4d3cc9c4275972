"""Fixtures for lab tests: real network namespaces, so root only.

Every lab gets a prefix unique to this process and test, is built fresh (about 0.1 s)
and is always torn down, also when the test fails; a failing test's report then shows
the addresses and routes of every lab machine.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from vragent.lab.topology import Lab

LAB_TESTS_DIR = Path(__file__).parent
_lab_numbers = itertools.count(1)


def _lab_unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "lab tests need root (network namespaces)"
    probe = f"vrprobe{os.getpid()}"
    try:
        subprocess.run(["ip", "netns", "add", probe], check=True, capture_output=True, timeout=5)
        subprocess.run(["ip", "netns", "del", probe], check=True, capture_output=True, timeout=5)
    except (OSError, subprocess.SubprocessError) as error:
        detail = getattr(error, "stderr", b"") or b""
        return f"`ip netns` does not work here: {error} {detail.decode(errors='replace').strip()}"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Everything under tests/lab is a lab test, so `-m "not lab"` skips it all.
    for item in items:
        if LAB_TESTS_DIR in item.path.parents:
            item.add_marker(pytest.mark.lab)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    # Remember each phase's outcome so the lab fixture knows whether the test failed.
    report = yield
    setattr(item, f"lab_report_{report.when}", report)
    return report


@pytest.fixture(scope="session", autouse=True)
def lab_host() -> None:
    """Skip the whole directory, with the reason, where namespaces cannot be made."""
    reason = _lab_unavailable_reason()
    if reason:
        pytest.skip(reason)


def unique_prefix() -> str:
    # "n" separates pid and counter, so pid 12 lab 3 and pid 1 lab 23 never collide.
    return f"t{os.getpid() % 10000}n{next(_lab_numbers)}"


@pytest.fixture
def make_lab(request: pytest.FixtureRequest) -> Iterator[Callable[..., Lab]]:
    """Factory for labs with non-default options: make_lab(routers=2, vm_static_addresses=False)."""
    labs: list[Lab] = []

    def make(**options: object) -> Lab:
        lab = Lab(unique_prefix(), **options)  # type: ignore[arg-type]
        labs.append(lab)
        lab.up()
        return lab

    yield make
    report = getattr(request.node, "lab_report_call", None)
    for lab in labs:
        if report is not None and report.failed:
            print(f"\n--- {lab!r} at failure ---\n{lab.describe()}")
        lab.down()


@pytest.fixture
def lab(make_lab: Callable[..., Lab]) -> Lab:
    """A freshly built default lab: one router, two VMs with static addresses."""
    return make_lab()
