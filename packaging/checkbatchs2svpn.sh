#!/bin/sh
# Drop-in for CloudStack's /opt/cloud/bin/checkbatchs2svpn.sh PEER...: prints, with no
# newline, `<peer>:0:IPsec SA found;Site-to-site VPN have connected&` for each peer whose
# IKE SA is established in vragent's charon, else `<peer>:11:IPsec SA not found;...&`.
exec /usr/bin/python3 -m vragent status --checks2svpn "$@"
