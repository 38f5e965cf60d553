#!/usr/bin/env bash
# Run ccp's cgroup v2 path against a real cgroup v2 kernel: Debian's kernel in
# QEMU (software emulation, no KVM), an initramfs of busybox and the modules
# that reach the host's files, cgroup2 mounted by our own init, and
# guest-check.mjs run inside the guest with the host's node and the built repo.
#
#   bash packages/server/test/vm/cgroup-v2-vm.sh [--ccpd]
#
# The host's / is shared read-only over 9p (virtio): the guest chroots into it,
# with its own /proc, /sys, /dev, a tmpfs /tmp and cgroup2 on /sys/fs/cgroup,
# so node, the repo's dist/ and the Postgres binaries are the host's own and
# nothing is copied. A small partitioned virtio disk (ext4 on vda1) is mounted
# at /tmp/ccp-vm-data: io.max needs a real block device under the data dir.
# --ccpd also starts ccpd in the guest and checks a database's postmaster is in
# its cgroup v2 group with the limits written (slow: Postgres under emulation).
# Installs what it needs with apt-get when absent (this is a test; ccpd needs none of it).
# Exits non-zero when any guest check fails or the guest does not finish.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../../../.." && pwd)
ccpd=0
for a in "$@"; do
  case "$a" in
    --ccpd) ccpd=1 ;;
    *) echo "cgroup-v2-vm.sh: unknown option $a (only --ccpd)" >&2; exit 2 ;;
  esac
done
timeout_s=${CCP_VM_TIMEOUT:-$((ccpd ? 1800 : 600))}

need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
dpkg -s busybox-static >/dev/null 2>&1 || need+=(busybox-static)
command -v cpio >/dev/null || need+=(cpio)
command -v sfdisk >/dev/null || need+=(fdisk)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
command -v modprobe >/dev/null || need+=(kmod)
ls /boot/vmlinuz-* >/dev/null 2>&1 || need+=(linux-image-amd64)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing ${need[*]} (apt-get)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null
fi
[ -f "$repo/packages/server/dist/runtime/process/cgroups.js" ] || { echo "cgroup-v2-vm.sh: no dist/: run npm run build first" >&2; exit 1; }

kernel=$(ls /boot/vmlinuz-* | sort -V | tail -1)
kver=${kernel#/boot/vmlinuz-}
work=$(mktemp -d /tmp/ccp-v2vm.XXXXXX)
trap 'rm -rf "$work"' EXIT

# initramfs: busybox, our init, the modules (and what they depend on) in load order.
ird="$work/initramfs"
mkdir -p "$ird"/{bin,proc,sys,dev,host}
cp /bin/busybox "$ird/bin/busybox"
cp "$here/init.sh" "$ird/init"
chmod +x "$ird/init"
: > "$ird/modules.list"
for m in virtio_pci virtio_blk 9pnet_virtio 9p ext4; do
  modprobe -S "$kver" --show-depends "$m" | awk '$1 == "insmod" { print $2 }' | while read -r ko; do
    grep -qx "$ko" "$ird/modules.list" && continue
    mkdir -p "$ird$(dirname "$ko")"
    cp "$ko" "$ird$ko"
    echo "$ko" >> "$ird/modules.list"
  done
done
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$work/initramfs.gz"

# A disk with a partition table, as most hosts have: ext4 on its first partition.
disk="$work/disk.img"
truncate -s 1G "$disk"
echo 'start=2048, type=83' | sfdisk -q "$disk"
mkfs.ext4 -q -F -E offset=$((2048 * 512)) "$disk" $(((1024 * 1024 - 1024) ))k

echo "host: $(uname -r) (cgroup $( [ -f /sys/fs/cgroup/cgroup.controllers ] && echo v2 || echo v1 )); guest kernel: $kver (QEMU TCG, no KVM)"
log="$work/console.log"
set +e
timeout --foreground "$timeout_s" qemu-system-x86_64 \
  -accel tcg -cpu max -smp 2 -m 2048 -nographic -no-reboot -nodefaults -serial stdio \
  -kernel "$kernel" -initrd "$work/initramfs.gz" \
  -append "console=ttyS0 panic=-1 quiet loglevel=3 ccp.repo=$repo ccp.ccpd=$ccpd" \
  -virtfs "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap" \
  -drive "file=$disk,if=virtio,format=raw" \
  -device virtio-rng-pci < /dev/null 2>&1 | sed -u 's/\r$//; s/\x1b\[[0-9;?]*[a-zA-Z]//g; s/\x1bc//g' | tee "$log"
qemu_rc=${PIPESTATUS[0]}
set -e
rc=$(sed -n 's/^CCP-VM-EXIT \([0-9]*\)$/\1/p' "$log" | tail -1)
if [ -z "$rc" ]; then
  echo "cgroup-v2-vm.sh: the guest did not finish (qemu exit $qemu_rc; timeout ${timeout_s}s, CCP_VM_TIMEOUT to change)" >&2
  exit 1
fi
echo "guest kernel $kver: checks $( [ "$rc" = 0 ] && echo passed || echo FAILED ) (exit $rc)"
exit "$rc"
