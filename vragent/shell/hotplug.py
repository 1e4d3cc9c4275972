"""Waiting for hot-plugged NICs.

A VPC router boots with its control NIC only; the hypervisor plugs its public NIC, tiers
and private gateways later (an isolated router's further public VLANs too), and the push
that configures such a NIC follows its PlugNicCommand at once. The kernel may see the NIC
a moment after the push arrives (PCI hot-plug, udev naming), so before validating a push
against the router's NICs the agent waits for the NICs it names, within a bound. What is
still missing then is refused by validation as an unknown device (exit 2, nothing done).
The incumbent waits two seconds (CsDevice.waitfordevice) and then skips the address.
"""

from __future__ import annotations

import os
import time
from typing import Callable


# VRAGENT_NIC_WAIT overrides it (seconds, 0 to not wait): what a hot-plug may take.
DEFAULT_WAIT_SECONDS = 10.0
POLL_SECONDS = 0.1


def wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("VRAGENT_NIC_WAIT", DEFAULT_WAIT_SECONDS)))
    except ValueError:
        return DEFAULT_WAIT_SECONDS


def wait_for(wanted, read_links: Callable[[], dict[str, str]], links: dict[str, str],
             timeout: float | None = None, sleep: Callable[[float], None] = time.sleep,
             clock: Callable[[], float] = time.monotonic) -> tuple[dict[str, str], object, float]:
    """Poll `read_links()` (name -> MAC) until every wanted NIC is there or `timeout` passes.
    `wanted` is a subsystems.network.nics.WantedNics (its `missing(links)` says what is not
    there yet). Returns the last links seen, what is still missing, and the seconds waited."""
    missing = wanted.missing(links)
    if not missing:
        return links, missing, 0.0
    timeout = wait_seconds() if timeout is None else timeout
    started = clock()
    while missing and clock() - started < timeout:
        sleep(POLL_SECONDS)
        links = read_links()
        missing = wanted.missing(links)
    return links, missing, clock() - started


def await_nics(wanted, links_and_addresses, read: Callable[[], tuple], logger) -> tuple[tuple, float]:
    """`links_and_addresses` (netlink's pair) once the `wanted` NICs are there, or the bound
    has passed; and the seconds waited (0 when none was missing)."""
    def macs(pair: tuple) -> dict[str, str]:
        return {name: link.mac for name, link in pair[0].items() if name.startswith("eth")}

    if not wanted.missing(macs(links_and_addresses)):
        return links_and_addresses, 0.0
    latest = [links_and_addresses]

    def poll() -> dict[str, str]:
        latest[0] = read()
        return macs(latest[0])

    _, missing, waited = wait_for(wanted, poll, macs(links_and_addresses))
    if missing:
        logger.warning("NIC(s) %s not plugged after %.1f s", missing, waited)
    else:
        logger.info("waited %.1f s for hot-plugged NIC(s) %s", waited, wanted)
    return latest[0], waited
