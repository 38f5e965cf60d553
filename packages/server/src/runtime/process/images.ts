import { execFile, execFileSync } from "node:child_process";
import { accessSync, chmodSync, chownSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, rmdirSync, rmSync, statfsSync, statSync, truncateSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { postgresSettingsFor } from "../limits.js";

/**
 * The hard storage bound (#15): each database's instance folder is the mount
 * point of its own sparse ext4 image, so a tenant that writes past it gets
 * ENOSPC for itself alone, whatever ccpd's sampler has seen.
 *
 * The bound is ext4's own reserve, not the image's size. An image is made four
 * times as large as needed (at least 16 GiB; sparse: unused blocks cost nothing
 * on the host), and everything past the database's *room* is held back through
 * the filesystem's `reserved_clusters` (/sys/fs/ext4/<dev>/): the clusters ext4
 * keeps from every writer, root included, for its own metadata. The room
 * changes live by writing that file, which needs no CAP_SYS_RESOURCE, unlike an
 * online resize2fs (refused where that capability is dropped, as in many
 * containers and on this CI host), and no exec on a create's path. The setting
 * lives only as long as the mount, so every mount sets it again. A room past
 * the image's capacity needs the image grown offline (e2fsck + resize2fs), at
 * the database's next start. (The on-disk reserved blocks of `tune2fs -r` would
 * persist, but spare root and e2fsck refuses more than half the filesystem.)
 *
 * room = storage limit + WAL headroom (three times max_wal_size as
 * runtime/limits.ts derives it from the limit: max_wal_size is a soft target, and
 * under one heavy writer pg_wal runs past it while checkpoints catch up; this is
 * what it may hold past the data when the soft quota turns the database
 * read-only) + LOG_ALLOWANCE (Postgres's logs and ccp's small files live on the
 * image too).
 *
 * Postgres answers ENOSPC on a data file with an ERROR (the statement fails,
 * nothing else), but ENOSPC on a new WAL segment is a PANIC, and crash recovery
 * then needs a segment too. So a database whose image is full is lent
 * CRASH_RESERVE more room, once, at its restart or at the storage quota's next
 * reading (see ProcessDriver#grantReserve), taken back once it has freed space.
 */

const MiB = 1024 * 1024;
/** Postgres's logs (pruned at 50 MiB, LOG_LIMITS) and ccp's files in the instance folder. */
export const LOG_ALLOWANCE = 64 * MiB;
/** Room granted for crash recovery when a server ended on a full image (a few WAL segments). */
export const CRASH_RESERVE = 64 * MiB;
const BLOCK = 4096;
/** Fixed, small journal: the default grows with the (sparse, generous) capacity up to 1 GiB, and a journal gets written in full over time. */
const JOURNAL_MIB = 32;

const execFileAsync = promisify(execFile);

/** WAL a database may hold past its data: three times max_wal_size as derived from its storage limit. */
export function walHeadroom(storageBytes: number): number {
  const v = postgresSettingsFor({ storageBytes })["max_wal_size"] ?? "1024MB";
  return 3 * Number.parseInt(v, 10) * MiB;
}

/** What Postgres may fill on a database's image (see the module comment). */
export function imageRoom(storageBytes: number): number {
  return roundUp(storageBytes + walHeadroom(storageBytes) + LOG_ALLOWANCE, MiB);
}

/** Size of the (sparse) image file made for a room: four times the room, at least 16 GiB, so a limit can grow live that far. */
export function imageCapacity(room: number): number {
  return roundUp(Math.max(4 * room, 16 * 1024 * MiB), MiB);
}

function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** e2fsprogs and util-linux programs the images need, by absolute path. */
interface Tools {
  readonly mkfs: string;
  readonly e2fsck: string;
  readonly resize2fs: string;
  readonly mount: string;
  readonly umount: string;
}

function which(name: string): string | undefined {
  const dirs = [...(process.env["PATH"] ?? "").split(":"), "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
  for (const d of dirs) {
    if (!d) continue;
    const file = path.join(d, name);
    try {
      accessSync(file, constants.X_OK);
      return file;
    } catch {
      // not here
    }
  }
  return undefined;
}

/** "/a\040b" in /proc/self/mounts is "/a b". */
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** The loop device a file is attached to, if any (sysfs names each device's backing file). */
function attachedTo(file: string): string | undefined {
  let names: string[];
  try {
    names = readdirSync("/sys/block").filter((n) => n.startsWith("loop"));
  } catch {
    return undefined;
  }
  for (const n of names) {
    try {
      if (readFileSync(`/sys/block/${n}/loop/backing_file`, "utf8").trim() === file) return `/dev/${n}`;
    } catch {
      // not attached
    }
  }
  return undefined;
}

/** One database image per instance folder, kept in `<instances>/.images` (root only). */
export class Images {
  readonly #dir: string;
  readonly #tools: Tools;

  private constructor(dir: string, tools: Tools) {
    this.#dir = dir;
    this.#tools = tools;
  }

  /**
   * Images on this host, found by doing it: a tiny image is made, mounted
   * through a loop device, written, its reserved blocks changed and unmounted.
   * A string says why not (the caller reports it and keeps the soft quota).
   */
  static probe(dir: string): Images | string {
    if (process.getuid?.() !== 0) return "ccpd does not run as root (loop mounts need it)";
    const missing: string[] = [];
    const find = (name: string, pkg: string) => which(name) ?? (missing.push(`${name} (${pkg})`), "");
    const tools: Tools = {
      mkfs: find("mkfs.ext4", "e2fsprogs"),
      e2fsck: find("e2fsck", "e2fsprogs"),
      resize2fs: find("resize2fs", "e2fsprogs"),
      mount: find("mount", "util-linux"),
      umount: find("umount", "util-linux"),
    };
    if (missing.length > 0) return `${missing.join(", ")} not found: install them for a hard quota`;
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Canonical: the kernel names mount points and loop backing files so.
    const images = new Images(realpathSync(dir), tools);
    const folder = path.join(dir, "probe");
    try {
      images.#unmountSync(folder);
      rmSync(images.fileOf(folder), { force: true });
      mkdirSync(folder, { recursive: true, mode: 0o700 });
      images.#mkfsSync(folder, 64 * MiB, 4 * MiB, undefined);
      images.mountSync(folder);
      writeFileSync(path.join(folder, "probe"), "ok\n");
      if (!images.setRoom(folder, 8 * MiB) || images.room(folder) !== 8 * MiB) return "ext4's reserved_clusters (sysfs) cannot bound a filesystem's room here";
      return images;
    } catch (err) {
      const e = err as { stderr?: Buffer; message: string };
      const why = (e.stderr?.toString().trim() || e.message).split("\n")[0];
      return `a loop-mounted ext4 image cannot be made on this host: ${why}`;
    } finally {
      try {
        images.#unmountSync(folder);
        rmSync(images.fileOf(folder), { force: true });
        rmdirSync(folder);
      } catch {
        // left for the next probe
      }
    }
  }

  /** The image file of an instance folder (by the folder's own name: a claimed pool slot keeps its slot's). */
  fileOf(folder: string): string {
    return path.join(this.#dir, `${path.basename(folder)}.img`);
  }

  has(folder: string): boolean {
    return existsSync(this.fileOf(folder));
  }

  /** Names of the folders that have an image (re-adoption at start-up). */
  folders(): string[] {
    return readdirSync(this.#dir)
      .filter((n) => n.endsWith(".img"))
      .map((n) => n.slice(0, -4));
  }

  /** The loop device mounted on a folder, if it is mounted. */
  deviceOf(folder: string): string | undefined {
    let want = path.resolve(folder);
    try {
      want = realpathSync(want);
    } catch {
      return undefined;
    }
    let found: string | undefined;
    for (const line of readFileSync("/proc/self/mounts", "utf8").split("\n")) {
      const [dev, at] = line.split(" ");
      if (dev && at && unescapeMount(at) === want) found = dev;
    }
    return found;
  }

  /**
   * Make a folder the mount point of a new image whose root is owned by `owner`
   * (0700) with `room` for Postgres. The folder must not exist.
   */
  async make(folder: string, room: number, owner: { uid: number; gid: number } | undefined): Promise<void> {
    mkdirSync(folder, { mode: 0o700 });
    // The mount point too: the folder shows its owner while unmounted as well.
    if (owner) chownSync(folder, owner.uid, owner.gid);
    try {
      await this.#mkfs(folder, imageCapacity(room), owner);
      this.mountSync(folder);
      this.#ready(folder);
      this.setRoom(folder, room);
    } catch (err) {
      await this.remove(folder).catch(() => undefined);
      rmSync(folder, { recursive: true, force: true });
      throw err;
    }
  }

  /** make() without yielding (a restore's empty instance is made by a synchronous call). */
  makeSync(folder: string, room: number, owner: { uid: number; gid: number } | undefined): void {
    mkdirSync(folder, { mode: 0o700 });
    if (owner) chownSync(folder, owner.uid, owner.gid);
    try {
      this.#mkfsSync(folder, imageCapacity(room), JOURNAL_MIB * MiB, owner);
      this.mountSync(folder);
      this.#ready(folder);
      this.setRoom(folder, room);
    } catch (err) {
      this.#unmountSync(folder);
      rmSync(this.fileOf(folder), { force: true });
      rmSync(folder, { recursive: true, force: true });
      throw err;
    }
  }

  #ready(folder: string): void {
    chmodSync(folder, 0o700);
    // e2fsck recreates lost+found when it needs one; the tenant's folder holds only its own things.
    rmdirSync(path.join(folder, "lost+found"));
  }

  #mkfsArgs(file: string, owner: { uid: number; gid: number } | undefined): string[] {
    const ext = ["lazy_itable_init=1", "lazy_journal_init=1", ...(owner ? [`root_owner=${owner.uid}:${owner.gid}`] : [])];
    return ["-q", "-F", "-m", "0", "-b", String(BLOCK), "-J", `size=${JOURNAL_MIB}`, "-E", ext.join(","), file];
  }

  async #mkfs(folder: string, capacity: number, owner: { uid: number; gid: number } | undefined): Promise<void> {
    const file = this.fileOf(folder);
    writeFileSync(file, "", { mode: 0o600 });
    truncateSync(file, capacity);
    await execFileAsync(this.#tools.mkfs, this.#mkfsArgs(file, owner));
  }

  #mkfsSync(folder: string, capacity: number, journal: number, owner: { uid: number; gid: number } | undefined): void {
    const file = this.fileOf(folder);
    writeFileSync(file, "", { mode: 0o600 });
    truncateSync(file, capacity);
    const args = this.#mkfsArgs(file, owner);
    args[args.indexOf(`size=${JOURNAL_MIB}`)] = `size=${Math.floor(journal / MiB)}`;
    execFileSync(this.#tools.mkfs, args, { stdio: "pipe" });
  }

  /**
   * Mount a folder's image on it (a no-op when it is). util-linux's `mount -o loop`
   * picks a free loop device atomically (other processes attach theirs meanwhile)
   * and sets autoclear, so the unmount detaches it: no device outlives its mount.
   * discard: space the tenant frees goes back to the host (the image stays sparse);
   * noinit_itable: the kernel does not zero the (sparse) inode tables in the background.
   */
  mountSync(folder: string): void {
    if (this.deviceOf(folder)) return;
    // Still attached (a mount an earlier ccpd detached lazily, in use by a process that outlived it): a second mount
    // of one ext4 filesystem would corrupt it.
    const attached = attachedTo(this.fileOf(folder));
    if (attached) throw new Error(`the image ${this.fileOf(folder)} is still attached to ${attached}`);
    execFileSync(this.#tools.mount, ["-t", "ext4", "-o", "loop,discard,nodev,nosuid,noinit_itable", this.fileOf(folder), folder], { stdio: "pipe" });
  }

  /**
   * Unmount (detaching the loop device), retried while something still holds it
   * (a sandbox ending); otherwise it stays mounted and this throws. `lazy`: for an
   * image being deleted (nothing can mount it again), detach it at once and let the
   * kernel finish the unmount (its writeback, ~100-300 ms for a fresh database)
   * off the request's path; the loop device goes with it.
   */
  async unmount(folder: string, lazy = false): Promise<void> {
    for (let i = 0; this.deviceOf(folder); i++) {
      try {
        await execFileAsync(this.#tools.umount, lazy ? ["-l", folder] : [folder]);
      } catch (err) {
        if (i >= 40) throw err;
        await sleep(50);
      }
    }
  }

  #unmountSync(folder: string): void {
    if (this.deviceOf(folder)) execFileSync(this.#tools.umount, ["-l", folder], { stdio: "pipe" });
  }

  /** Unmount and delete a folder's image (the folder itself stays, empty). */
  async remove(folder: string): Promise<void> {
    await this.unmount(folder, true);
    rmSync(this.fileOf(folder), { force: true });
  }

  #sysfs(folder: string): string {
    const dev = this.deviceOf(folder);
    if (!dev) throw new Error(`the image of ${folder} is not mounted`);
    return `/sys/fs/ext4/${path.basename(dev)}/reserved_clusters`;
  }

  /** The least ext4 keeps for its metadata on its own (2% up to 4096 clusters, as at mount). */
  #floor(folder: string): number {
    const st = statfsSync(folder);
    const total = Math.floor(statSync(this.fileOf(folder)).size / st.bsize);
    return Math.min(Math.floor(total / 50), 4096);
  }

  /** The room Postgres has now (mounted images only): what any writer may still fill plus what is filled. */
  room(folder: string): number {
    const st = statfsSync(folder);
    return (st.blocks - (st.bfree - st.bavail)) * st.bsize;
  }

  /** The most room this image can give without growing its file. */
  capacityRoom(folder: string): number {
    const st = statfsSync(folder);
    return (st.blocks - this.#floor(folder)) * st.bsize;
  }

  /** Bytes Postgres may still write. */
  free(folder: string): number {
    const st = statfsSync(folder);
    return st.bavail * st.bsize;
  }

  /** Set Postgres's room, live (false: past the image's capacity, it must grow first). */
  setRoom(folder: string, room: number): boolean {
    if (room > this.capacityRoom(folder)) return false;
    const st = statfsSync(folder);
    writeFileSync(this.#sysfs(folder), String(Math.max(this.#floor(folder), st.blocks - Math.ceil(room / st.bsize))));
    return true;
  }

  /**
   * Resize an image (offline: at a start, nothing uses it) to the capacity of
   * `room`, then mount it again and set the room. Shrinking fails (and changes
   * nothing) when what it holds does not fit: false.
   */
  async resize(folder: string, room: number): Promise<boolean> {
    if (!this.deviceOf(folder)) return false;
    await this.unmount(folder);
    const file = this.fileOf(folder);
    const size = imageCapacity(room);
    let done = false;
    try {
      // resize2fs wants a freshly checked filesystem; -p fixes only what is safe to fix unattended.
      await execFileAsync(this.#tools.e2fsck, ["-f", "-p", file]).catch((err: { code?: number }) => {
        if ((err.code ?? 8) >= 4) throw err; // 1 and 2: errors corrected
      });
      if (size > statSync(file).size) truncateSync(file, size);
      await execFileAsync(this.#tools.resize2fs, [file, `${size / BLOCK}`]);
      if (size < statSync(file).size) truncateSync(file, size);
      done = true;
    } catch {
      // left as it was (a shrink the data does not fit)
    } finally {
      this.mountSync(folder);
    }
    return done && this.setRoom(folder, room);
  }
}
