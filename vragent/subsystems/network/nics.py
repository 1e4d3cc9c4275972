"""The NICs a push configures, read from its raw documents (pure).

A hypervisor hot-plugs a NIC (a VPC router's public NIC, tiers and private gateways, an
isolated router's further public VLAN) and the management server sends the push that
configures it right after: the kernel may see the NIC a moment later than the push
arrives. The engine waits, within a bound, for the NICs named here before it validates
the push against the router's NICs (vragent.shell.hotplug). Only additions count: a NIC is
configured away before it is unplugged, so a removal never waits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass



@dataclass(frozen=True)
class WantedNics:
    devices: frozenset[str] = frozenset()  # ethN named by the push
    macs: frozenset[str] = frozenset()  # MACs of NICs named by MAC only (lower case)

    def missing(self, links: dict[str, str]) -> WantedNics:
        """What `links` (name -> MAC, as observed) does not have yet."""
        present = {mac.lower() for mac in links.values()}
        return WantedNics(frozenset(d for d in self.devices if d not in links),
                          frozenset(m for m in self.macs if m not in present))

    def __bool__(self) -> bool:
        return bool(self.devices or self.macs)

    def __str__(self) -> str:
        return ", ".join([*sorted(self.devices), *(f"MAC {m}" for m in sorted(self.macs))])


def wanted(documents: list) -> WantedNics:
    """The NICs that `ips` and `guestnetwork` documents (pipeline.intake.Document) add
    addresses to. Anything
    malformed is skipped here: validation reports it with its path."""
    devices: set[str] = set()
    macs: set[str] = set()
    for document in documents:
        try:
            data = document.data
        except Exception:  # noqa: BLE001 - malformed JSON is validation's to report
            continue
        if not isinstance(data, dict):
            continue
        kind = data.get("type")
        if kind == "guestnetwork" and data.get("add", True) is not False:
            device = data.get("device")
            if isinstance(device, str) and _is_nic_name(device):
                devices.add(device)
        elif kind == "ips" and isinstance(data.get("ip_address"), list):
            for entry in data["ip_address"]:
                if not isinstance(entry, dict) or entry.get("add", True) is False:
                    continue
                nic = entry.get("nic_dev_id")
                if isinstance(nic, str) and re.fullmatch(r"[0-9]+", nic.strip()):
                    nic = int(nic)  # as Fields.integer reads it
                if isinstance(nic, int) and not isinstance(nic, bool) and 0 <= nic <= 99:
                    devices.add(f"eth{nic}")
                elif nic is None and isinstance(entry.get("vif_mac_address"), str):
                    macs.add(entry["vif_mac_address"].lower())
    return WantedNics(frozenset(devices), frozenset(macs))


def _is_nic_name(name: str) -> bool:
    return re.fullmatch(r"eth([0-9]|[1-9][0-9])", name) is not None  # as Fields.device reads it
