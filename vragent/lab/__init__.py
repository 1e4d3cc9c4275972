"""The lab: a CloudStack isolated-network router rebuilt from network namespaces.

topology builds and removes the machines, traffic proves behaviour with real packets,
sample holds CloudStack pushes for the lab's network.
"""

from vragent.lab.topology import Lab, LabCommandError
from vragent.lab.traffic import ConnectResult, HeldConnection, TcpServer, ping, tcp_connect, udp_probe

__all__ = [
    "ConnectResult",
    "HeldConnection",
    "Lab",
    "LabCommandError",
    "TcpServer",
    "ping",
    "tcp_connect",
    "udp_probe",
]
