"""Secrets out of what the agent shows or keeps around: diffs, archived pushes."""

from __future__ import annotations

import re

_PRIVATE_KEY = re.compile(r"-----BEGIN ([A-Z ]*)PRIVATE KEY-----.*?-----END \1PRIVATE KEY-----", re.S)
# A JSON "password" member, as vm_password.json and vpn_user_list.json carry them, and
# the remote-access VPN's "preshared_key" (remote_access_vpn.json and the state) and the
# site-to-site VPN's "ipsec_psk" (site_2_site_vpn.json) and "preshared_key" (the state),
# and a BGP peer's "peer_password" (bgp_peers.json and the state).
_PASSWORD = re.compile(r'("(?:password|preshared_key|ipsec_psk|peer_password)"\s*:\s*)"(?:[^"\\]|\\.)*"')


def secrets_hidden(text: str) -> str:
    """`text` with TLS private keys and JSON password and pre-shared key values replaced by a marker."""
    text = _PRIVATE_KEY.sub("(private key, not shown)", text)
    return _PASSWORD.sub(r'\1"(not shown)"', text)
