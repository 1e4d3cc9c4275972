"""Routed networks (CloudStack's ROUTED mode, is_routed=true) and their dynamic routing:
BGP peers (bgp_peers.json) served by FRR's zebra and bgpd."""
