#!/bin/bash
# Build the appliance disk image: Debian tree (mmdebstrap) -> Ansible through the chroot
# connection -> UEFI disk image (image/assemble.sh). See image/README.md.
#
# usage: image/build.sh [--inventory production|test] [--out DIR] [--extra-var NAME=VALUE]...
#                       [--check-idempotence]
#   --check-idempotence  run the playbook a second time and fail unless it reports changed=0
#   --from-tree DIR      start from a copy of an already configured tree (e.g. the production
#                        image's) instead of the mmdebstrap base: the test variant then only adds
#                        its inventory's differences (saves the second venv installation)
# Run as root (mmdebstrap --mode=root, chroot, bind mounts). Paths are derived from the repo.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
INVENTORY=production
OUT=$REPO/build/image
EXTRA_VARS=()
CHECK_IDEMPOTENCE=no
FROM_TREE=""
SUITE=${IMAGE_SUITE:-trixie}
MIRROR=${IMAGE_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
CACHE=$REPO/build/cache
ANSIBLE_VENV=${ANSIBLE_VENV:-$REPO/build/ansible-venv}

while [ $# -gt 0 ]; do
    case "$1" in
        --inventory) INVENTORY=$2; shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --extra-var) EXTRA_VARS+=(-e "$2"); shift 2 ;;
        --check-idempotence) CHECK_IDEMPOTENCE=yes; shift ;;
        --from-tree) FROM_TREE=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
[ "$(id -u)" = 0 ] || { echo "image/build.sh must run as root" >&2; exit 1; }
[ -x "$ANSIBLE_VENV/bin/ansible-playbook" ] || { echo "no Ansible in $ANSIBLE_VENV: run 'make image-deps'" >&2; exit 1; }
[ -d "$REPO/ansible/inventories/$INVENTORY" ] || { echo "no inventory ansible/inventories/$INVENTORY" >&2; exit 1; }

mkdir -p "$OUT" "$CACHE/pip"
TREE=$OUT/tree
MOUNTS=()

unmount_all() {
    local i
    for ((i=${#MOUNTS[@]}-1; i>=0; i--)); do umount -l "${MOUNTS[$i]}" 2>/dev/null || true; done
    MOUNTS=()
}
trap unmount_all EXIT

bind() {  # bind SOURCE TARGET-IN-TREE
    mkdir -p "$TREE$2"
    mount --bind "$1" "$TREE$2"
    MOUNTS+=("$TREE$2")
}

# --- 1. base tree, cached by package list and suite ------------------------------------
packages=$(grep -v '^\s*#' "$REPO/image/packages.txt" | grep -v '^\s*$' | sort | tr '\n' ',' | sed 's/,$//')
key=$(printf '%s|%s|%s' "$SUITE" "$MIRROR" "$packages" | sha256sum | cut -c1-16)
BASE=$CACHE/base-$SUITE-$key.tar
if [ -n "$FROM_TREE" ]; then
    [ -d "$FROM_TREE/etc" ] || { echo "--from-tree $FROM_TREE: not a tree" >&2; exit 1; }
elif [ ! -s "$BASE" ]; then
    log "mmdebstrap $SUITE (cache miss: $BASE)"
    start=$(date +%s)
    mmdebstrap --quiet --variant=minbase --mode=root --format=tar --components=main \
        --include="$packages" \
        --aptopt='Acquire::Retries "3"' \
        --customize-hook='rm -f "$1"/etc/resolv.conf' \
        "$SUITE" "$BASE.tmp" \
        "deb $MIRROR $SUITE main" \
        "deb $MIRROR $SUITE-updates main" \
        "deb $SECURITY_MIRROR $SUITE-security main"
    mv "$BASE.tmp" "$BASE"
    log "mmdebstrap done in $(( $(date +%s) - start )) s"
else
    log "base tree from cache: $BASE"
fi

rm -rf "$TREE"
mkdir -p "$TREE"
if [ -n "$FROM_TREE" ]; then
    log "copying the configured tree $FROM_TREE into $TREE"
    cp -a --reflink=auto "$FROM_TREE/." "$TREE/"
else
    log "unpacking the tree into $TREE"
    tar -C "$TREE" --numeric-owner --xattrs --xattrs-include='*' -xf "$BASE"
fi

# --- 2. the playbook, through the chroot connection -------------------------------------
log "packing the package source"
"$REPO/image/pack-source.sh" "$OUT/appliance-src.tar.gz"

# The chroot needs /proc, /sys, /dev, DNS (pip) and must not start daemons.
bind /proc /proc
bind /sys /sys
bind /dev /dev
bind /dev/pts /dev/pts
bind "$CACHE/pip" /var/cache/appliance-build-pip
# pip in the chroot trusts what the build machine trusts (e.g. a TLS-inspecting proxy's CA),
# through a bind mount that is gone from the image afterwards.
HOST_CA=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
touch "$TREE/var/cache/appliance-build-ca.pem"
mount --bind "$HOST_CA" "$TREE/var/cache/appliance-build-ca.pem"
MOUNTS+=("$TREE/var/cache/appliance-build-ca.pem")
rm -f "$TREE/etc/resolv.conf"  # the image's is a symlink to systemd-resolved's stub (restored below)
cp /etc/resolv.conf "$TREE/etc/resolv.conf"
printf '#!/bin/sh\nexit 101\n' > "$TREE/usr/sbin/policy-rc.d"
chmod 0755 "$TREE/usr/sbin/policy-rc.d"

run_playbook() {
    env -u PIP_FIND_LINKS -u PIP_CONSTRAINT -u PIP_INDEX_URL -u PIP_EXTRA_INDEX_URL \
        PIP_CERT=/var/cache/appliance-build-ca.pem SSL_CERT_FILE=/var/cache/appliance-build-ca.pem \
        REQUESTS_CA_BUNDLE=/var/cache/appliance-build-ca.pem SSL_CERT_DIR=/etc/ssl/certs \
        ANSIBLE_CONFIG=$REPO/ansible/ansible.cfg "$ANSIBLE_VENV/bin/ansible-playbook" \
        -i "$REPO/ansible/inventories/$INVENTORY" "$REPO/ansible/site.yml" \
        -e "image_tree=$TREE" -e "appliance_source_archive=$OUT/appliance-src.tar.gz" \
        -e "appliance_pip_cache_directory=/var/cache/appliance-build-pip" \
        "${EXTRA_VARS[@]}" "$@"
}

log "ansible-playbook (inventory $INVENTORY)"
start=$(date +%s)
run_playbook > "$OUT/ansible.log" 2>&1 || { tail -n 60 "$OUT/ansible.log"; log "ansible-playbook failed (full log: $OUT/ansible.log)"; exit 1; }
sed -n '/PLAY RECAP/,$p' "$OUT/ansible.log"
log "playbook done in $(( $(date +%s) - start )) s"

if [ "$CHECK_IDEMPOTENCE" = yes ]; then
    log "second run of the playbook: it must change nothing"
    start=$(date +%s)
    run_playbook > "$OUT/ansible-second-run.log" 2>&1 || { tail -n 60 "$OUT/ansible-second-run.log"; exit 1; }
    sed -n '/PLAY RECAP/,$p' "$OUT/ansible-second-run.log"
    if ! grep -Eq 'changed=0 +unreachable=0 +failed=0' "$OUT/ansible-second-run.log"; then
        grep -E '^changed:' "$OUT/ansible-second-run.log" || true
        log "NOT IDEMPOTENT: the second run changed something (log: $OUT/ansible-second-run.log)"
        exit 1
    fi
    log "idempotent: second run changed=0 in $(( $(date +%s) - start )) s"
fi

# --- 3. clean the tree of build-time traces ---------------------------------------------
rm -f "$TREE/usr/sbin/policy-rc.d"
unmount_all
rm -rf "$TREE/var/cache/appliance-build-pip" "$TREE/var/cache/appliance-build-ca.pem" "$TREE/root/.cache" "$TREE/root/.ansible" "$TREE/tmp/"* \
       "$TREE/var/cache/apt/archives/"*.deb
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$TREE/etc/resolv.conf"

# --- 4. the disk image ------------------------------------------------------------------
"$REPO/image/assemble.sh" "$TREE" "$OUT"
log "image ready: $OUT/appliance.raw, $OUT/appliance.qcow2"
