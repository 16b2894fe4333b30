#!/bin/sh
# Installs the host programs that `boxkube build node-image` needs, when missing:
#   debootstrap     builds the node image's base from Debian's packages (no registry needed)
#   busybox-static  the one binary of the workload images (pause, busybox, hello)
# Run by `make install`. Uses apt-get as root, or through sudo when it needs no password;
# anywhere else it only says what to install (it never fails the install).
set -u

PACKAGES="debootstrap busybox-static"

missing=""
for package in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}\n' "$package" 2>/dev/null | grep -q " installed$"; then
        missing="$missing $package"
    fi
done
[ -z "$missing" ] && exit 0

say() { echo "install-host-packages: $*" >&2; }

if ! command -v apt-get >/dev/null 2>&1; then
    say "not a Debian-like host: install$missing with your package manager to build the node image"
    exit 0
fi
if [ "$(id -u)" = 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
else
    say "to build the node image, run: sudo apt-get install$missing"
    exit 0
fi

say "installing$missing with apt-get"
export DEBIAN_FRONTEND=noninteractive
# A fresh machine may have no package lists yet: update once when the install fails.
if ! $sudo apt-get install -y -q --no-install-recommends $missing; then
    $sudo apt-get update -q && $sudo apt-get install -y -q --no-install-recommends $missing \
        || say "apt-get could not install$missing; boxkube build node-image will say what is missing"
fi
exit 0
