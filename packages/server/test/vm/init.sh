#!/bin/busybox sh
# The guest's init (cgroup-v2-vm.sh): load the modules, mount the host's / (9p,
# read-only) with fresh /proc, /sys, /dev and /tmp, cgroup2 on /sys/fs/cgroup,
# the virtio disk's ext4 at /tmp/ccp-vm-data, then run guest-check.mjs there.
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for ko in $(cat /modules.list); do insmod "$ko" 2>/dev/null; done
repo=$(sed -n 's/.*ccp\.repo=\([^ ]*\).*/\1/p' /proc/cmdline)
ccpd=$(sed -n 's/.*ccp\.ccpd=\([^ ]*\).*/\1/p' /proc/cmdline)
finish() {
  echo "CCP-VM-EXIT $1"
  sync
  poweroff -f
}
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=512000 hostroot /host || finish 90
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mkdir -p /host/dev/shm /host/dev/pts
mount -t tmpfs tmpfs /host/dev/shm
mount -t devpts devpts /host/dev/pts
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
mount -t cgroup2 cgroup2 /host/sys/fs/cgroup || finish 91
mkdir -p /host/tmp/ccp-vm-data
mount -t ext4 /dev/vda1 /host/tmp/ccp-vm-data || finish 92
ifconfig lo 127.0.0.1 up
echo "guest: $(uname -r), cgroup2 on /sys/fs/cgroup: $(cat /host/sys/fs/cgroup/cgroup.controllers)"
chroot /host /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin HOME=/tmp TMPDIR=/tmp \
  CCP_VM_DATA=/tmp/ccp-vm-data CCP_VM_CCPD="$ccpd" \
  node "$repo/packages/server/test/vm/guest-check.mjs"
finish $?
