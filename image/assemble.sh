#!/bin/bash
# Turn a configured Debian tree into a bootable UEFI disk image, without mounting anything
# (the build machine's kernel may have no loop partitions, md or device-mapper):
# A 3 GiB disk (the configured tree is ~0.8 GiB; the data lives on the data mirror):
#   GPT: p1 EFI system partition (FAT, GRUB standalone loader at the removable-media path)
#        p2 "appliance-root" (type Linux RAID): an ext4 file system made from the tree with
#           mke2fs -d, 16 MiB smaller than the partition so that the initramfs can turn it into
#           a RAID-1 member with metadata 1.0 (superblock at the end) at first boot.
# usage: image/assemble.sh TREE OUTDIR   -> OUTDIR/appliance.raw, OUTDIR/appliance.qcow2
set -euo pipefail

TREE=$1
OUT=$2
IMAGE_SIZE_MIB=${IMAGE_SIZE_MIB:-3072}
ESP_SIZE_MIB=${ESP_SIZE_MIB:-64}
ROOT_SLACK_MIB=16
ROOT_LABEL=${ROOT_LABEL:-appliance-root}
ESP_TYPE=C12A7328-F81F-11D2-BA4B-00A0C93EC93B
RAID_TYPE=A19D880F-05FC-4D3B-A006-743F0F84911E

log() { printf '[image %s] %s\n' "$(date +%H:%M:%S)" "$*"; }
work=$(mktemp -d "$OUT/assemble.XXXXXX")
trap 'rm -rf "$work"' EXIT
start=$(date +%s)

# --- partition table on a sparse file ---------------------------------------------------
raw=$OUT/appliance.raw.tmp
rm -f "$raw"
truncate -s "${IMAGE_SIZE_MIB}M" "$raw"
sfdisk --quiet "$raw" <<SFDISK
label: gpt
first-lba: 2048
start=2048, size=${ESP_SIZE_MIB}MiB, type=$ESP_TYPE, name="esp"
start=, size=, type=$RAID_TYPE, name="$ROOT_LABEL"
SFDISK
read -r esp_start esp_size root_start root_size < <(sfdisk --json "$raw" | python3 -c '
import json, sys
parts = json.load(sys.stdin)["partitiontable"]["partitions"]
print(parts[0]["start"], parts[0]["size"], parts[1]["start"], parts[1]["size"])')

# --- root file system from the tree -----------------------------------------------------
root_fs_bytes=$(( root_size * 512 - ROOT_SLACK_MIB * 1024 * 1024 ))
log "root file system: $(( root_fs_bytes / 1024 / 1024 )) MiB from $TREE"
truncate -s "$root_fs_bytes" "$work/root.ext4"
mke2fs -q -F -t ext4 -L "$ROOT_LABEL" -d "$TREE" -E lazy_itable_init=0 "$work/root.ext4"
e2fsck -fn "$work/root.ext4" >/dev/null 2>&1
dd if="$work/root.ext4" of="$raw" bs=1M seek=$(( root_start / 2048 )) conv=notrunc,sparse status=none
rm -f "$work/root.ext4"

# --- EFI system partition: a standalone GRUB that reads /boot/grub/grub.cfg on the root -
cat > "$work/embedded.cfg" <<GRUBCFG
insmod part_gpt
insmod mdraid1x
insmod ext2
search --no-floppy --label --set=root $ROOT_LABEL
if [ -f (\$root)/boot/grub/grub.cfg ]; then
    configfile (\$root)/boot/grub/grub.cfg
else
    echo "appliance: no /boot/grub/grub.cfg on the file system labelled $ROOT_LABEL"
    sleep 30
fi
GRUBCFG
grub-mkstandalone -O x86_64-efi -o "$work/BOOTX64.EFI" \
    --modules="part_gpt mdraid1x ext2 search search_label configfile serial terminal echo test sleep linux normal" \
    --locales="" --fonts="" --themes="" \
    "boot/grub/grub.cfg=$work/embedded.cfg"
mkfs.vfat -n ESP -C "$work/esp.img" $(( esp_size / 2 )) >/dev/null
mmd -i "$work/esp.img" ::/EFI ::/EFI/BOOT
mcopy -i "$work/esp.img" "$work/BOOTX64.EFI" ::/EFI/BOOT/BOOTX64.EFI
dd if="$work/esp.img" of="$raw" bs=512 seek="$esp_start" conv=notrunc status=none

mv "$raw" "$OUT/appliance.raw"
log "raw image done in $(( $(date +%s) - start )) s"
qemu-img convert -O qcow2 "$OUT/appliance.raw" "$OUT/appliance.qcow2.tmp"
mv "$OUT/appliance.qcow2.tmp" "$OUT/appliance.qcow2"
log "qcow2 image done ($(du -h "$OUT/appliance.qcow2" | cut -f1) allocated)"
