"""NICs plugged into a lab router after it is up, the way a hypervisor hot-plugs them.

`Lab(..., hotplug=("eth1", ...))` holds those router NICs back when the lab comes up;
`plug()` then cables one in: its switch port is up on its bridge (the hypervisor's tap on
the host bridge), and the router's end appears administratively DOWN with no address, as
a freshly hot-plugged virtio NIC does in the guest. Bringing it up is the agent's job.
`plug_later()` does it from a thread after a delay, so a push can arrive first.
"""

from __future__ import annotations

import threading

from vragent.lab.topology import SWITCH_ROLE, Lab, Nic, switch_port


def _nic(lab: Lab, role: str, ifname: str) -> Nic:
    node = next(n for n in lab.nodes if n.role == role)
    nic = next((n for n in node.nics if n.ifname == ifname), None)
    if nic is None or ifname not in lab.hotplug:
        raise ValueError(f"{role} {ifname} is not a hot-plugged NIC of {lab!r}")
    return nic


def plug(lab: Lab, ifname: str, role: str = "vr") -> None:
    nic = _nic(lab, role, ifname)
    port = switch_port(role, ifname)
    lab._ip_batch(SWITCH_ROLE, [
        f"link add {port} type veth peer name {nic.ifname} address {nic.mac} netns {lab.ns(role)}",
        f"link set {port} master {nic.bridge} up",
    ])


def unplug(lab: Lab, ifname: str, role: str = "vr") -> None:
    _nic(lab, role, ifname)
    lab._ip_batch(SWITCH_ROLE, [f"link del {switch_port(role, ifname)}"])


class PlugLater:
    """Plugs `ifname` after `delay` seconds from a thread; `join()` waits and re-raises."""

    def __init__(self, lab: Lab, ifname: str, delay: float, role: str = "vr"):
        self.error: BaseException | None = None

        def run() -> None:
            try:
                plug(lab, ifname, role)
            except BaseException as exc:  # noqa: BLE001 - handed to join()
                self.error = exc

        self._timer = threading.Timer(delay, run)
        self._timer.start()

    def join(self) -> None:
        self._timer.join()
        if self.error is not None:
            raise self.error
