#!/usr/bin/env bash
# Usage: scripts/deploy_base.sh [IMAGE]    (default IMAGE: seqarena-base:bookworm)
# Build a Debian bookworm base image from Debian's own packages, for machines that cannot pull the
# public python image (Dockerfile.cpu's default base). debootstrap (minbase) with Debian's Python 3.11,
# python3-venv and ca-certificates, then `docker import`. The Debian mirror is read at run time from
# this machine's apt sources; the machine's CA bundle (which trusts a TLS-inspecting proxy, if the
# machine has one) replaces the image's, so that pip inside builds verifies certificates.
# Prints the mirror and the image id. Needs root (debootstrap) and a running Docker daemon.
set -euo pipefail
IMAGE=${1:-seqarena-base:bookworm}
CA_BUNDLE=${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}

# The first http(s) Debian URI serving bookworm in /etc/apt/sources.list{,.d/*} (deb822 or one-line).
find_mirror() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    case "$f" in
      *.sources) awk '/^URIs:/{u=$2} /^Suites:/{ if ($0 ~ /[ \t]bookworm([ \t]|$)/ && u != "") {print u; exit} }' "$f" ;;
      *) awk '$1=="deb" && $0 !~ /security/ { for (i=2;i<=NF;i++) if ($i ~ /^https?:/ && $(i+1)=="bookworm") {print $i; exit} }' "$f" ;;
    esac
  done | head -n 1
}

MIRROR=${MIRROR:-$(find_mirror)}
[ -n "$MIRROR" ] || { echo "deploy_base: no Debian bookworm mirror in /etc/apt/sources*; set MIRROR" >&2; exit 2; }
[ -r "$CA_BUNDLE" ] || { echo "deploy_base: CA_BUNDLE $CA_BUNDLE not readable" >&2; exit 2; }
ROOTFS=$(mktemp -d "${TMPDIR:-/tmp}/seqarena-rootfs.XXXXXX")
trap 'rm -rf "$ROOTFS"' EXIT
echo "deploy_base: debootstrap bookworm from $MIRROR" >&2
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$ROOTFS" "$MIRROR" >&2
cp "$CA_BUNDLE" "$ROOTFS/etc/ssl/certs/ca-certificates.crt"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'CMD ["python3"]' - "$IMAGE"
