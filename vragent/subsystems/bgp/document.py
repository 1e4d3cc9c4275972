"""The `bgp_peers` section of the state document (schema: schema/state.schema.json).

Each peer in bgp_peers.json's own words (BgpPeerTO's snake_case keys, `details` with
`EBGP_MultiHop`), so a native document is checked by the wire parser itself, with the
same messages. Left out while empty. Peer passwords are secrets: the state file is mode
0600 and a printed diff masks them (redact.py).
"""

from __future__ import annotations

from vragent.errors import ValidationError
from vragent.model import BgpPeer
from vragent.fields import Fields

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (~3 ms a push)
if TYPE_CHECKING:
    from typing import Any

PEERS = "bgp_peers"


def _wire(peer: BgpPeer) -> dict[str, Any]:
    doc: dict[str, Any] = {"peer_id": peer.peer_id, "network_id": peer.network_id,
                           "peer_as_number": peer.peer_as, "network_as_number": peer.network_as}
    optional = {"ip4_address": peer.ip4, "ip6_address": peer.ip6, "guest_ip4_cidr": peer.guest_ip4_cidr,
                "guest_ip6_cidr": peer.guest_ip6_cidr}
    doc |= {key: str(value) for key, value in optional.items() if value is not None}
    if peer.password is not None:
        doc["peer_password"] = peer.password
    if peer.ebgp_multihop is not None:
        doc["details"] = {"EBGP_MultiHop": str(peer.ebgp_multihop)}
    return doc


def to_document(peers: tuple[BgpPeer, ...]) -> dict[str, Any]:
    return {PEERS: [_wire(p) for p in peers]} if peers else {}


def load_trusted(data: dict) -> tuple[BgpPeer, ...]:
    return from_document(Fields(data, "state", []), [])


def from_document(doc: Fields, errors: list[ValidationError]) -> tuple[BgpPeer, ...]:
    from vragent.subsystems.bgp.bgppeers import parse_peers

    if doc.raw(PEERS, None) is None:
        return ()
    peers = parse_peers(Fields(doc.data, doc.path, errors), PEERS)
    return tuple(peer for peer, _ in peers or ())
