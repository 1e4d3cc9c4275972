#!/usr/bin/env bash
# Installs everything vragent's lab and tests need on a fresh Debian 12 machine (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "bootstrap: run as root (the lab and tests create network namespaces)" >&2
    exit 1
fi

PACKAGES=(iptables ipset conntrack iproute2 iputils-ping iputils-arping netcat-openbsd socat curl
          dnsmasq-base dnsmasq-utils haproxy keepalived conntrackd radvd isc-dhcp-client bind9-dnsutils procps kmod
          python3 python3-venv python3-pip python3-jinja2 python3-pyroute2
          strongswan-charon strongswan-swanctl charon-systemd xl2tpd ppp tdb-tools frr
          cron wget e2fsprogs)
missing=()
for package in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# The daemons' own units, which their packages enable for the machine's next boot. On a
# developer's machine that would start charon (udp 500/4500), xl2tpd (1701), haproxy,
# keepalived, conntrackd and radvd on all its addresses at boot: vragent (or the tests)
# run these daemons themselves, inside namespaces. What this script installs it leaves
# disabled; a unit that was enabled before stays enabled.
HOST_UNITS=(strongswan.service strongswan-starter.service ipsec.service xl2tpd.service haproxy.service
            keepalived.service conntrackd.service radvd.service)
unit_enabled() { [ "$(systemctl is-enabled "$1" 2>/dev/null)" = enabled ]; }
if [ "${#missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing ${missing[*]}"
    enabled_before=()
    for unit in "${HOST_UNITS[@]}"; do
        if unit_enabled "$unit"; then enabled_before+=("$unit"); fi
    done
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # Daemons must not be started by their packages: vragent (or the tests) start them.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
    for unit in "${HOST_UNITS[@]}"; do
        if unit_enabled "$unit" && [[ " ${enabled_before[*]} " != *" $unit "* ]]; then
            systemctl disable --no-reload -q "$unit" 2>/dev/null || systemctl disable -q "$unit" 2>/dev/null || true
            echo "bootstrap: left $unit disabled for this machine's next boot (it was not enabled before)"
        fi
    done
fi

# The venv uses Debian's python3 and sees Debian's jinja2 and pyroute2 (what the VR image ships).
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pytest, pyfakefs, hypothesis, jsonschema' 2>/dev/null; then
    /usr/bin/python3 -m venv --system-site-packages .venv
    .venv/bin/python -m pip install -q --disable-pip-version-check pytest pyfakefs hypothesis jsonschema
fi
# compat: a plain path entry (.pth), not an import hook that slows every agent start
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e . --config-settings editable_mode=compat >/dev/null
# Byte-compile as the Debian package does (this environment may forbid writing .pyc at import).
.venv/bin/python -m compileall -q vragent >/dev/null
