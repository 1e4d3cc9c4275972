#!/bin/sh
# Example for image builders: a minimal Debian 12 root filesystem with vragent in it,
# built with debootstrap from Debian's packages plus the vragent .deb, then checked.
#
#   packaging/build-image.sh VRAGENT_DEB [DIR]
#
# DIR defaults to /var/tmp/vragent-image (kept afterwards for inspection; it is reused
# when it already holds a bootstrapped system). Needs root and debootstrap; MIRROR
# overrides debootstrap's default Debian mirror. A real system VM image is built the
# same way, plus a kernel, a boot loader and CloudStack's own boot pieces: see
# packaging/IMAGE-BUILDERS.md.
#
# Exit status: 0 when every check passed; each check prints PASS or FAIL.
set -eu

if [ "$#" -lt 1 ] || [ ! -f "$1" ]; then
    echo "usage: $0 VRAGENT_DEB [DIR]" >&2
    exit 2
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "$0: run as root (debootstrap, chroot)" >&2
    exit 2
fi
deb=$(realpath "$1")
dir=${2:-/var/tmp/vragent-image}
here=$(dirname "$(realpath "$0")")

# What a router image has besides vragent's own dependencies.
base_packages=systemd,systemd-sysv,udev,openssh-server,logrotate,ca-certificates

if [ ! -x "$dir/usr/bin/apt-get" ]; then
    echo "== debootstrap bookworm into $dir"
    # shellcheck disable=SC2086
    debootstrap --variant=minbase --include="$base_packages" bookworm "$dir" ${MIRROR:-}
fi

cleanup() {
    rm -f "$dir/usr/sbin/policy-rc.d"
    umount "$dir/proc" 2>/dev/null || true
}
trap cleanup EXIT
mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
# Nothing starts daemons inside the image while it is built.
printf '#!/bin/sh\nexit 101\n' > "$dir/usr/sbin/policy-rc.d"
chmod 755 "$dir/usr/sbin/policy-rc.d"

echo "== install $(basename "$deb") with its dependencies from Debian"
cp "$deb" "$dir/tmp/vragent.deb"
chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get update -q >/dev/null
chroot "$dir" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    /tmp/vragent.deb python3-systemd >/dev/null

failures=0
check() {
    description=$1
    shift
    if output=$(chroot "$dir" /bin/sh -c "$*" 2>&1); then
        echo "PASS $description"
    else
        echo "FAIL $description"
        printf '%s\n' "$output" | sed 's/^/     /'
        failures=$((failures + 1))
    fi
}

# A push shaped like the management server's first one: the router's boot arguments.
mkdir -p "$dir/tmp/vragent-check"
cat > "$dir/tmp/vragent-check/cmd_line.json" <<'EOF'
{"type": "cmdline", "cmd_line": {"type": "router", "name": "r-101-VM", "template": "domP",
 "eth0ip": "192.0.2.1", "eth0mask": "255.255.255.0", "eth1ip": "169.254.1.10",
 "eth1mask": "255.255.0.0", "eth2ip": "198.51.100.10", "eth2mask": "255.255.255.0",
 "gateway": "198.51.100.1", "dns1": "198.51.100.1", "domain": "lab.internal",
 "useextdns": "false", "redundant_router": "false", "guestgw": "192.0.2.1"}}
EOF

echo "== checks"
check "vragent --version" 'vragent --version'
check "vragent apply --dry-run of a cmd_line.json push" \
    'vragent --root /tmp/vragent-check/root apply --dry-run /tmp/vragent-check/cmd_line.json'
check "the shims are in /opt/cloud/bin" '/usr/lib/vragent/install-shims check'
check "the image is marked a router's (vragent configures its network; see vragent.shell.guard)" \
    'grep -qx machine /etc/vragent/this-is-a-router'
check "update_config.py (the shim) runs: a missing push fails with the reason" \
    'out=$(VRAGENT_ROOT=/tmp/vragent-check/root /opt/cloud/bin/update_config.py ip_associations.json.1 2>&1); \
     [ $? -eq 1 ] && echo "$out" | grep -q "does not exist"'
check "update_config.py (the shim) runs: an already processed push succeeds" \
    'mkdir -p /tmp/vragent-check/root/var/cache/cloud/processed && \
     : | gzip > /tmp/vragent-check/root/var/cache/cloud/processed/ip_associations.json.2.gz && \
     VRAGENT_ROOT=/tmp/vragent-check/root /opt/cloud/bin/update_config.py ip_associations.json.2'
check "vr_cfg.sh (the shim) runs" \
    'VRAGENT_ROOT=/tmp/vragent-check/root /opt/cloud/bin/vr_cfg.sh -c /tmp/vragent-check/none.cfg; [ $? -eq 1 ]'

# cloud-scripts.tgz unpacked over /opt/cloud/bin, as cloud-early-config and a live patch do.
mkdir -p "$dir/tmp/vragent-check/incumbent/opt/cloud/bin"
for name in update_config.py vr_cfg.sh configure.py merge.py checkrouter.sh get_template_version.sh netusage.sh vpc_netusage.sh; do
    printf '#!/bin/sh\necho incumbent %s\n' "$name" > "$dir/tmp/vragent-check/incumbent/opt/cloud/bin/$name"
    chmod 755 "$dir/tmp/vragent-check/incumbent/opt/cloud/bin/$name"
done
tar czf "$dir/tmp/vragent-check/cloud-scripts.tgz" -C "$dir/tmp/vragent-check/incumbent" opt
check "a cloud-scripts.tgz patch replaces the shims (what vragent-shims.path watches for)" \
    'tar xzf /tmp/vragent-check/cloud-scripts.tgz -C / && ! /usr/lib/vragent/install-shims check 2>/dev/null'
check "vragent-shims.service puts them back; the incumbent's other scripts stay" \
    '/usr/lib/vragent/install-shims >/dev/null && /usr/lib/vragent/install-shims check && \
     /opt/cloud/bin/get_template_version.sh | grep -q incumbent'

check "the units pass systemd-analyze verify" \
    'systemd-analyze verify --man=no vragent-fail-closed.service vragent-restore.service vragent-dnsmasq.service vragent-haproxy.service vragent-metadata.service \
     vragent-keepalived.service vragent-conntrackd.service vragent-shims.service vragent-shims.path \
     ssh.service 2>&1 | grep -v "^$" | (! grep .)'
check "fail-closed closes a fresh network namespace: DROP policies, SSH on the control NIC" \
    'unshare --net sh -c "/usr/lib/vragent/fail-closed >/dev/null && iptables -w -S > /tmp/vragent-check/closed" && \
     grep -qx -- "-P INPUT DROP" /tmp/vragent-check/closed && grep -qx -- "-P FORWARD DROP" /tmp/vragent-check/closed && \
     grep -qx -- "-A INPUT -j vr-INPUT" /tmp/vragent-check/closed && \
     grep -qx -- "-A vr-INPUT -i eth1 -p tcp -m tcp --dport 3922 -j ACCEPT" /tmp/vragent-check/closed'
check "the boot units and vragent-shims.path are enabled, the daemons are not" \
    'systemctl is-enabled vragent-fail-closed.service vragent-restore.service vragent-shims.path && \
     for d in dnsmasq haproxy metadata keepalived conntrackd; do \
         [ "$(systemctl is-enabled vragent-$d.service)" = static ] || exit 1; done'
check "the packages' own daemon units are masked" \
    'for u in haproxy keepalived conntrackd; do \
         [ "$(readlink /etc/systemd/system/$u.service)" = /dev/null ] || exit 1; done && \
     [ "$(readlink /etc/systemd/system/dnsmasq.service)" = /lib/systemd/system/vragent-dnsmasq.service ]'
check "sshd: port 3922, keys only" \
    'mkdir -p /run/sshd && sshd -T 2>/dev/null | grep -qx "port 3922" && \
     sshd -T 2>/dev/null | grep -qx "passwordauthentication no" && \
     sshd -T 2>/dev/null | grep -qx "permitrootlogin without-password"'
check "logrotate accepts the rule for /var/log/cloud-scripts.log" 'logrotate -d /etc/logrotate.d/vragent'
check "the templates and the schema are installed" \
    'test -d /usr/share/vragent/templates && \
     python3 -c "import json, importlib.resources as r; json.loads(r.files(\"vragent\").joinpath(\"schema/state.schema.json\").read_text())"'

echo "== $failures check(s) failed; the image is in $dir"
[ "$failures" -eq 0 ]
