#!/bin/sh
# Builds the vragent .deb from a clean copy of the checkout (tracked files, plus new
# files git does not ignore) and runs lintian on it.
#
#   packaging/build-deb.sh [OUTDIR]     default OUTDIR: ./dist
#
# As root it first installs what the build needs from Debian (debhelper, dh-python,
# pybuild-plugin-pyproject, python3-all, python3-setuptools, lintian) when missing.
# Prints the path of the .deb on the last line. Fails when lintian reports an error.
set -eu

repo=$(cd "$(dirname "$0")/.." && pwd)
out=$(mkdir -p "${1:-$repo/dist}" && cd "${1:-$repo/dist}" && pwd)

build_deps="debhelper dh-python pybuild-plugin-pyproject python3-all python3-setuptools lintian git"
missing=
for package in $build_deps; do
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing="$missing $package"
done
if [ -n "$missing" ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "build-deb: missing build dependencies:$missing (install them as root)" >&2
        exit 1
    fi
    echo "build-deb: installing$missing" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    # shellcheck disable=SC2086
    apt-get install -y -q --no-install-recommends $missing >/dev/null
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/vragent"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh |
    tar --null -T - -cf -) | tar -xf - -C "$work/vragent"

started=$(date +%s)
(cd "$work/vragent" && dpkg-buildpackage -us -uc -b >"$work/build.log" 2>&1) || {
    tail -n 40 "$work/build.log" >&2
    exit 1
}
echo "build-deb: dpkg-buildpackage -us -uc -b took $(( $(date +%s) - started )) s" >&2

deb=$(ls "$work"/vragent_*_all.deb)
cp "$deb" "$out/"
deb="$out/$(basename "$deb")"
lintian --fail-on error "$deb" >&2
echo "$deb"
