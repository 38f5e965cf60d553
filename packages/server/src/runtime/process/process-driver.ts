import { createHash, randomBytes } from "node:crypto";
import { EventEmitter } from "node:events";
import { appendFileSync, chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync, renameSync, rmdirSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import type { DriverEvents, FileOwner, InstanceEndpoint, InstanceLimits, InstanceState, InstanceStorage, InstanceUsage, IsolationFeature, LimitsApplied, RuntimeDriver, StartOptions } from "../driver.js";
import { DATABASE_ID_PATTERN } from "../../ids.js";
import { postgresSettingsFor } from "../limits.js";
import type { PgBinaries } from "./binaries.js";
import { Cgroups } from "./cgroups.js";
import { chownTree, copyArchive, copyTree, makeDir, shellQuote } from "./fs-util.js";
import { CRASH_RESERVE, imageRoom, Images, walHeadroom } from "./images.js";
import { findLauncher, JAIL_RESTORE_COMMAND, probeLauncher, readOnlyPaths, type JailSpec } from "./jail.js";
import { PostgresServer, SOCKET_PORT, type PostgresServerOptions, type StartOnce } from "./postgres-server.js";
import type { RunAs } from "./system-user.js";
import { ADMIN_ROLE } from "./template.js";

/** The process driver's endpoint: a unix socket and peer authentication, spelled out for local tools and benches. */
export interface ProcessEndpoint extends InstanceEndpoint {
  readonly socketDir: string;
  readonly port: number;
  readonly adminUser: string;
}

export interface ProcessDriverOptions {
  readonly bin: PgBinaries;
  /** `<data-dir>/instances`: one folder per instance (data, run, postgres.log). */
  readonly instancesDir: string;
  readonly templateDir: string;
  readonly runAs: RunAs | undefined;
  readonly ccpdOsUser: string;
  /**
   * Where each instance archives its WAL (a local directory of the backup store),
   * through Postgres's basic_archive module: it fsyncs before reporting success
   * and refuses to overwrite a segment with different content.
   */
  readonly walArchiveDir?: (id: string) => string;
  /** archive_timeout in seconds: bounds what an idle-but-written database can lose. */
  readonly archiveTimeoutS?: number;
  /**
   * Pre-copied template data dirs kept ready, so a create renames one into
   * place instead of copying on the request path (default 2; 0 turns it off).
   */
  readonly spares?: number;
  /**
   * Servers kept running from the template, unreachable (socket dir 0700, no
   * database's archive target) until a create claims one (default 2; 0 turns it off).
   */
  readonly warmPool?: number;
  /** Limits of a database created without its own (server defaults): pre-started servers run with their settings. */
  readonly defaultLimits?: InstanceLimits;
  /**
   * "auto" (default): when ccpd is root, each instance runs as its own uid, in
   * the sandbox (native/jail.c) with its limits in its own cgroup, as far as
   * this host allows (see isolation()). "off": the plain process driver, every
   * instance as runAs in the host's namespaces, no limit enforced.
   */
  readonly isolation?: "auto" | "off";
  /** uids given to instances (the gid is the same number), one each; default DEFAULT_UID_RANGE. */
  readonly uidRange?: UidRange;
  /** Where cgroupfs is mounted (default /sys/fs/cgroup). */
  readonly cgroupRoot?: string;
}

export interface UidRange {
  readonly first: number;
  readonly count: number;
}

/** Far above the uids of people and system users; one ccpd per host should own a range (CCP_UID_RANGE). */
export const DEFAULT_UID_RANGE: UidRange = Object.freeze({ first: 900_000, count: 100_000 });

/** Instance folders are named by database id. */
const ID_DIR = DATABASE_ID_PATTERN;
/** Present in an instance's folder while it is suspended (asleep; woken on demand). */
const SUSPENDED_MARKER = "suspended";
/** A claimed pre-started server's own settings, included by its postgresql.conf. */
const INSTANCE_CONF = "ccp-instance.conf";
/** An instance's limits, kept in its folder so later starts (after a ccpd restart too) apply them. */
const LIMITS_FILE = "limits.json";

interface PooledServer {
  readonly root: string;
  readonly server: PostgresServer;
}

/** The sandbox as the probe found it at start-up (undefined: not in use, see #jailWhy). */
interface JailHost {
  readonly launcher: string;
  readonly readOnly: readonly string[];
  readonly oomShield: boolean;
}

/** A pre-started server's WAL archive folder: renamed into the database's archive at a claim (it is bound into the running sandbox). */
const POOL_ARCHIVE = "archive";
/** Where pool slots on images keep their archive folders (see #poolArchive). */
const POOL_ARCHIVES = ".pool-archives";
/** Archived WAL staged for a sandboxed recovery start (readable by the instance's own uid). */
const RESTORE_WAL = "restore-wal";

/**
 * Settings every instance starts with (on the command line, so existing data dirs get them too).
 * client_connection_check_interval: a query whose client is gone (closed its connection, or the
 * wire endpoint ended the session) stops within 2 s instead of running to completion; Postgres
 * only polls the socket while a query runs. Sessions may change it (SET).
 */
const INSTANCE_SETTINGS: Readonly<Record<string, string>> = Object.freeze({
  client_connection_check_interval: "2s",
  // Query insights (observability/insights.ts): loaded at start, so every instance has it whatever template it came from.
  shared_preload_libraries: "pg_stat_statements",
  "pg_stat_statements.max": "1000",
  // BEGIN/COMMIT and the gateway's DISCARD ALL would crowd out the tenant's statements.
  "pg_stat_statements.track_utility": "off",
  // The instance's log as JSON lines (observability/logs.ts reads them), rotated by Postgres and pruned by ccpd (pruneLogs).
  logging_collector: "on",
  log_destination: "jsonlog",
  log_filename: "postgresql-%Y%m%d-%H%M%S.log",
  log_rotation_size: "10MB",
  log_rotation_age: "1d",
  log_timezone: "UTC",
});

/** Bounds of an instance's log directory: ccpd removes the oldest files beyond these (pruneLogs). */
export const LOG_LIMITS = Object.freeze({ maxBytes: 50 * 1024 * 1024, maxAgeDays: 7 });

/** Each database is its own postgres process tree, supervised by ccpd. */
export class ProcessDriver implements RuntimeDriver {
  readonly name = "process";
  readonly events = new EventEmitter<DriverEvents>();
  readonly storage: InstanceStorage;
  readonly #o: ProcessDriverOptions;
  readonly #servers = new Map<string, PostgresServer>();
  readonly #supervised = new Set<string>();
  /** Instances being started (first start, wake, restart after an exit). */
  readonly #starting = new Set<string>();
  /** Instances whose restart after an exit keeps failing. */
  readonly #failed = new Set<string>();
  /** Complete spare data dirs, ready to be renamed into a new instance. */
  readonly #spares: string[] = [];
  /** Pre-started servers, ready to be renamed into a new instance. */
  readonly #pool: PooledServer[] = [];
  #refilling: Promise<void> | undefined;
  #closed = false;

  constructor(options: ProcessDriverOptions) {
    this.#o = Object.freeze({ ...options });
    makeDir(options.instancesDir, 0o755, undefined);
    this.storage = Object.freeze({
      dataDir: (id: string) => this.#paths(id).data,
      prepareEmpty: (id: string) => void this.prepareEmpty(id),
      ownerOf: (id: string) => this.ownerOf(id),
    });
    this.#scope = createHash("sha256").update(path.resolve(options.instancesDir)).digest("hex").slice(0, 12);
    this.#setUpIsolation();
    // Images left mounted by a ccpd that ended, or not mounted after a reboot: mounted again before anything looks inside.
    this.#adoptImages();
    // Spares are copied under a temporary name and renamed when complete: a
    // partial copy left by a crash is never used. Spares of another Postgres
    // version (another template), or of the other kind (image or plain folder), are dropped.
    const current = `.spare-${this.#o.bin.version}-`;
    // A claimed pre-started server (or, with images, a claimed spare) stays where it was made (Postgres keeps
    // absolute paths to its config files and pg_control; a mount point cannot be renamed): its instance folder is a symlink to it.
    const claimed = new Set<string>();
    for (const name of readdirSync(options.instancesDir)) {
      if (ID_DIR.test(name) && lstatSync(path.join(options.instancesDir, name)).isSymbolicLink()) claimed.add(readlinkSync(path.join(options.instancesDir, name)));
    }
    for (const name of readdirSync(options.instancesDir)) {
      if (!name.startsWith(".spare-") && !name.startsWith(".pool-")) continue;
      if (claimed.has(name)) continue;
      const dir = path.join(options.instancesDir, name);
      const imaged = this.#images?.has(dir) ?? false;
      const complete = this.#images ? imaged && existsSync(path.join(dir, "data")) : !existsSync(path.join(this.#o.instancesDir, ".images", `${name}.img`));
      if (name.startsWith(current) && complete) this.#spares.push(dir);
      else this.#staleDirs.push(dir);
    }
    // Archive folders of pool slots that are gone (the slot's removal was cut short).
    const archives = path.join(options.instancesDir, POOL_ARCHIVES);
    if (existsSync(archives)) for (const name of readdirSync(archives)) if (!existsSync(path.join(options.instancesDir, name))) rmSync(path.join(archives, name), { recursive: true, force: true });
    // Each instance's uid reaches its own folder; none may list the others.
    if (this.#ownIdentity) chmodSync(options.instancesDir, 0o711);
    this.#refill();
  }

  /** One per data dir: names this ccpd's cgroups and spreads its uids over the range. */
  readonly #scope: string;
  /** Each instance its own uid (ccpd is root and isolation is not off). */
  #ownIdentity = false;
  #identityWhy = "";
  #jail: JailHost | undefined;
  #jailWhy = "";
  #cgroups: Cgroups | undefined;
  #cgroupsWhy = "";
  /** Each database's folder on its own ext4 image (the hard storage bound, see images.ts). */
  #images: Images | undefined;
  #imagesWhy = "";

  /** Decide, by trying rather than assuming, which isolation this host gives (isolation() reports it). */
  #setUpIsolation(): void {
    if (this.#o.isolation === "off") {
      this.#identityWhy = this.#jailWhy = this.#cgroupsWhy = this.#imagesWhy = "isolation is off (CCP_ISOLATION=off)";
      return;
    }
    if (!this.#o.runAs) {
      this.#identityWhy = this.#jailWhy = this.#cgroupsWhy = "ccpd does not run as root: every instance runs as ccpd's own user, in the host's namespaces, without limits";
      this.#imagesWhy = "ccpd does not run as root: no filesystem image per database (loop mounts need root)";
      return;
    }
    this.#ownIdentity = true;
    // Images need root and mkfs.ext4, not the sandbox: Postgres runs as the database's own uid either way.
    const images = Images.probe(path.join(this.#o.instancesDir, ".images"));
    if (typeof images === "string") this.#imagesWhy = images;
    else this.#images = images;
    const launcher = findLauncher();
    if (!launcher) {
      this.#jailWhy = "the native launcher (native/jail.c) was not built: install a C toolchain (python3, make, gcc) and run `npm run build`";
      this.#cgroupsWhy = `limits need the sandbox: ${this.#jailWhy}`;
      return;
    }
    const readOnly = readOnlyPaths(this.#o.bin);
    const probe = probeLauncher(launcher, path.join(this.#jailDirs(), "probe"), this.#uidRange().first, readOnly);
    if (!probe.ok) {
      this.#jailWhy = `the sandbox cannot be made on this host: ${probe.why}`;
      this.#cgroupsWhy = `limits need the sandbox: ${this.#jailWhy}`;
      return;
    }
    this.#jail = { launcher, readOnly, oomShield: probe.oomShield };
    const cgroups = Cgroups.detect({ scope: this.#scope, ...(this.#o.cgroupRoot ? { root: this.#o.cgroupRoot } : {}) });
    if (typeof cgroups === "string") this.#cgroupsWhy = cgroups;
    else {
      this.#cgroups = cgroups;
      // v1: ccpd weighs as much as an unlimited database, so a busy one cannot starve the traffic of the others through it.
      cgroups.joinSelf();
    }
  }

  /** Root-owned: each sandbox's mount point and lock (outside the instance's own folder, which its uid may change). */
  #jailDirs(): string {
    const dir = path.join(this.#o.instancesDir, ".jail");
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    return dir;
  }

  #uidRange(): UidRange {
    return this.#o.uidRange ?? DEFAULT_UID_RANGE;
  }

  /**
   * A uid (and gid) no instance folder of this ccpd is owned by: the owner of
   * an instance's folder is its identity, so nothing else needs to be kept and a
   * destroyed instance's uid is free again. The search starts at a point of the
   * range derived from the data dir, so two ccpd on one host rarely meet.
   */
  #allocateIdentity(): RunAs {
    const taken = new Set<number>(this.#reserved);
    for (const name of readdirSync(this.#o.instancesDir)) {
      try {
        taken.add(statSync(path.join(this.#o.instancesDir, name)).uid);
      } catch {
        // removed meanwhile
      }
    }
    const { first, count } = this.#uidRange();
    const start = Number.parseInt(this.#scope.slice(0, 8), 16) % count;
    for (let i = 0; i < count; i++) {
      const uid = first + ((start + i) % count);
      if (!taken.has(uid)) {
        this.#reserved.add(uid);
        return { uid, gid: uid, name: `ccp-${uid}` };
      }
    }
    throw new Error(`Every uid of the range ${first}-${first + count - 1} is in use by an instance: destroy some, or widen CCP_UID_RANGE.`);
  }

  /** uids handed out whose folder may not show them yet (a copy being made). */
  readonly #reserved = new Set<number>();

  /** Make an instance's folder owned by a fresh identity; the shared user when instances have no identity of their own. */
  #makeOwnedRoot(root: string): RunAs | undefined {
    const identity = this.#ownIdentity ? this.#allocateIdentity() : this.#o.runAs;
    try {
      makeDir(root, 0o700, identity);
    } finally {
      if (identity) this.#reserved.delete(identity.uid);
    }
    return identity;
  }

  /** The identity an instance's Postgres runs as: its folder's owner (so it survives ccpd restarts). */
  #identityOf(root: string): RunAs | undefined {
    if (!this.#ownIdentity) return this.#o.runAs;
    const st = statSync(root);
    return { uid: st.uid, gid: st.gid, name: `ccp-${st.uid}` };
  }

  /** Who must own files written into an instance's data dir (restores, branches). */
  ownerOf(id: string): FileOwner | undefined {
    const identity = this.#ownIdentity ? this.#identityOf(this.#paths(id).root) : this.#o.runAs;
    return identity ? { uid: identity.uid, gid: identity.gid } : undefined;
  }

  /** A server's cgroup and sandbox folder name: its folder's real name (a claimed pre-started server keeps the pool slot's). */
  #groupName(root: string): string {
    // A claimed spare's folder names its Postgres version (".spare-18.4-…"): cgroup names take no dots.
    return path.basename(realpathSync(root)).replace(/^\./, "").replace(/[^a-z0-9_-]/g, "-");
  }

  /**
   * The sandbox of one server, made anew at each start: its cgroup (limits
   * written before the launcher joins it), its mount point and lock, and the
   * only host paths it sees besides the binaries. `limits` is read at each start.
   */
  #jailFor(root: string, dataDir: string, readWrite: () => string[], identity: RunAs | undefined, limits: () => InstanceLimits): ((once: StartOnce) => JailSpec) | undefined {
    const jail = this.#jail;
    if (!jail || !identity) return undefined;
    const name = this.#groupName(root);
    return (once) => {
      const cgroups = this.#cgroups?.create(name) ?? [];
      this.#cgroups?.apply(name, limits(), dataDir);
      const dir = path.join(this.#jailDirs(), name);
      mkdirSync(path.join(dir, "root"), { recursive: true, mode: 0o700 });
      const ccpd = process.getuid?.() ?? 0;
      return {
        launcher: jail.launcher,
        rootDir: path.join(dir, "root"),
        lockFile: path.join(dir, "lock"),
        cgroups,
        readOnly: jail.readOnly,
        readWrite: readWrite(),
        // Peer authentication looks the client (ccpd) up by uid: pg_ident.conf maps its name.
        users: [`${this.#o.ccpdOsUser}:${ccpd}:${process.getgid?.() ?? 0}`, `postgres:${identity.uid}:${identity.gid}`],
        ...(once.restoreDir ? { restoreDir: once.restoreDir } : {}),
      };
    };
  }

  /** Pool servers (and partial copies) left by an earlier ccpd: stopped (if one still runs) and removed. */
  readonly #staleDirs: string[] = [];

  /** Top the pools up in the background, one copy or start at a time: pre-started servers first, then spare copies. */
  #refill(): void {
    if (this.#refilling || this.#closed) return;
    this.#refilling = (async () => {
      for (let dir = this.#staleDirs.pop(); dir; dir = this.#staleDirs.pop()) {
        await new PostgresServer(this.#serverOptions(path.join(dir, "data"), path.join(dir, "run"), path.join(dir, "postgres.log"), {}, undefined))
          .stopStale()
          .catch(() => undefined);
        await this.#forgetSandbox(dir);
        await this.#removeFolder(dir);
      }
      while (!this.#closed) {
        if (this.#pool.length < (this.#o.warmPool ?? 2)) {
          if (!(await this.#startPooled())) return;
        } else if (this.#spares.length < (this.#o.spares ?? 2)) {
          if (!(await this.#copySpare())) return;
        } else return;
      }
    })()
      // Background work must never reject unhandled (that ends ccpd): a failure (its folder removed under it, a full
      // disk) ends this refill, and a create copies the template itself meanwhile.
      .catch(() => undefined)
      .finally(() => (this.#refilling = undefined));
  }

  async #copySpare(): Promise<boolean> {
    const storage = this.#o.defaultLimits?.storageBytes;
    if (this.#images && storage !== undefined) return this.#makeImageSpare(this.#images, storage);
    const suffix = randomBytes(6).toString("hex");
    const tmp = path.join(this.#o.instancesDir, `.spare-tmp-${suffix}`);
    // Owned by a uid of its own already, so the create that takes it needs no chown on its path.
    const identity = this.#ownIdentity ? this.#allocateIdentity() : undefined;
    try {
      await copyTree(this.#o.templateDir, tmp);
      if (identity) await chownTree(tmp, identity);
      const ready = path.join(this.#o.instancesDir, `.spare-${this.#o.bin.version}-${suffix}`);
      renameSync(tmp, ready);
      this.#spares.push(ready);
      return true;
    } catch {
      try {
        rmSync(tmp, { recursive: true, force: true });
      } catch {
        // removed under us, or not removable now: a later start drops partial copies (.spare-tmp-*)
      }
      return false; // a create copies the template itself meanwhile
    } finally {
      if (identity) this.#reserved.delete(identity.uid);
    }
  }

  /**
   * With images, a spare is a mounted image (the default limit's room) holding a
   * copy of the template in `data/`: a create links its folder to it. `data` is
   * renamed into place once complete (a start-up drops a spare without it).
   */
  async #makeImageSpare(images: Images, storageBytes: number): Promise<boolean> {
    const folder = path.join(this.#o.instancesDir, `.spare-${this.#o.bin.version}-${randomBytes(6).toString("hex")}`);
    const identity = this.#allocateIdentity();
    try {
      await images.make(folder, imageRoom(storageBytes), identity);
      const tmp = path.join(folder, "data.tmp");
      await copyTree(this.#o.templateDir, tmp);
      await chownTree(tmp, identity);
      renameSync(tmp, path.join(folder, "data"));
      this.#spares.push(folder);
      return true;
    } catch {
      await this.#removeFolder(folder).catch(() => undefined);
      return false; // a create makes its image and copies the template itself meanwhile
    } finally {
      this.#reserved.delete(identity.uid);
    }
  }

  /**
   * An instance folder on its own image with a copy of the template: a spare when
   * one fits (the folder becomes a link to it, the room is set to the limit's), else
   * a fresh image. Pool slots (`useSpare` false) always get a fresh one.
   */
  async #takeImage(images: Images, root: string, storageBytes: number, useSpare: boolean): Promise<RunAs> {
    const room = imageRoom(storageBytes);
    const spare = useSpare ? this.#spares.shift() : undefined;
    if (spare && images.has(spare) && room <= images.capacityRoom(spare)) {
      symlinkSync(path.basename(spare), root);
      try {
        if (images.room(spare) !== room) images.setRoom(spare, room);
      } catch (err) {
        rmSync(root, { force: true });
        await this.#removeFolder(spare).catch(() => undefined);
        throw err;
      }
      return this.#identityOf(spare) as RunAs;
    }
    if (spare) this.#spares.unshift(spare);
    const identity = this.#allocateIdentity();
    try {
      await images.make(root, room, identity);
    } finally {
      this.#reserved.delete(identity.uid);
    }
    const data = path.join(root, "data");
    await copyTree(this.#o.templateDir, data);
    await chownTree(data, identity);
    return identity;
  }

  /** Remove an instance, pool or spare folder: its image (if any) unmounted and deleted first, a pool slot's archive folder too. */
  async #removeFolder(dir: string): Promise<void> {
    if (this.#images?.has(dir)) await this.#images.remove(dir);
    rmSync(dir, { recursive: true, force: true });
    rmSync(path.join(this.#o.instancesDir, POOL_ARCHIVES, path.basename(dir)), { recursive: true, force: true });
  }

  /**
   * A pre-started server's WAL archive folder, renamed into its database's archive
   * at a claim: beside the slot's folder, where that is a filesystem image (a
   * rename does not cross filesystems), else inside it.
   */
  #poolArchive(root: string): string {
    if (!this.#images?.has(root)) return path.join(root, POOL_ARCHIVE);
    const parent = path.join(this.#o.instancesDir, POOL_ARCHIVES);
    // Root's, traversable: each slot's own folder below is its uid's (0700).
    makeDir(parent, 0o711, undefined);
    return path.join(parent, path.basename(root));
  }

  /** An instance's own folder: a claimed pool slot's or spare's (its folder is a link to it), else its own. */
  #folder(id: string): string {
    const { root } = this.#paths(id);
    try {
      return lstatSync(root).isSymbolicLink() ? path.resolve(this.#o.instancesDir, readlinkSync(root)) : root;
    } catch {
      return root;
    }
  }

  /** Mount every image whose folder exists (after a reboot, or a ccpd that unmounted them at shutdown); drop those whose folder is gone. */
  #adoptImages(): void {
    const images = this.#images;
    if (!images) return;
    for (const name of images.folders()) {
      const dir = path.join(this.#o.instancesDir, name);
      if (!existsSync(dir)) {
        rmSync(images.fileOf(dir), { force: true });
        continue;
      }
      try {
        images.mountSync(dir);
        // The room lives as long as the mount: its limit's (an instance's own, or the default for a spare or pool slot).
        this.#fitFolder(dir, this.#readLimits(dir) ?? this.#o.defaultLimits ?? {});
      } catch {
        // Left unmounted (still attached elsewhere, or damaged): the instance shows no data, nothing is mounted twice.
      }
    }
  }

  /**
   * Fit an instance's image room to its storage limit (images.ts): raised at once;
   * lowered at once as far as what it holds allows (never under its data plus the
   * WAL headroom: a full pg_wal is a PANIC), the rest as it frees space (each
   * usage() sample and each start fit it again). "resize": outside what the
   * image can give live (done offline at the next start); undefined: no image.
   */
  #fitRoom(id: string, limits: InstanceLimits): "live" | "later" | "resize" | undefined {
    return this.#fitFolder(this.#folder(id), limits);
  }

  #fitFolder(folder: string, limits: InstanceLimits): "live" | "later" | "resize" | undefined {
    const images = this.#images;
    if (!images?.has(folder) || !images.deviceOf(folder)) return undefined;
    const capacity = images.capacityRoom(folder);
    const wanted = limits.storageBytes === undefined ? capacity : imageRoom(limits.storageBytes);
    if (wanted > capacity) return "resize";
    const room = images.room(folder);
    let target = wanted;
    if (wanted < room) {
      const used = room - images.free(folder);
      target = Math.max(wanted, Math.min(room, used + walHeadroom(limits.storageBytes ?? capacity)));
    }
    if (target !== room) images.setRoom(folder, target);
    return target === wanted ? "live" : "later";
  }

  /**
   * A database its image stopped gets CRASH_RESERVE more room, once: a server
   * that ended on it (a WAL segment it could not make is a PANIC, and its crash
   * recovery needs one too) comes back with its committed data intact, and a
   * running one can write the WAL of the DROP or DELETE that frees space (with
   * data checksums even a SELECT may write WAL). Lent at a restart and at the
   * storage quota's reading (which makes the database read-only first); #fitRoom
   * takes it back as the usage falls.
   */
  #grantReserve(id: string): void {
    const images = this.#images;
    const folder = this.#folder(id);
    if (!images?.has(folder) || !images.deviceOf(folder) || images.free(folder) >= CRASH_RESERVE) return;
    const limit = this.limits(id).storageBytes;
    const wanted = limit === undefined ? images.capacityRoom(folder) : imageRoom(limit);
    const room = images.room(folder);
    if (room >= wanted + CRASH_RESERVE) return;
    images.setRoom(folder, Math.min(images.capacityRoom(folder), room + CRASH_RESERVE));
  }

  /**
   * A spare data dir for a new instance (or pool slot), with the identity that
   * owns it (a fresh one for a fresh copy of the template). With images (a
   * storage limit given), the instance's folder is its own image instead.
   */
  async #takeSpare(root: string, data: string, storageBytes?: number, useSpare = true): Promise<RunAs | undefined> {
    if (this.#images && storageBytes !== undefined) return this.#takeImage(this.#images, root, storageBytes, useSpare);
    // No storage limit: a plain folder. A spare on an image is a mount point, which cannot be renamed into it.
    const spare = this.#spares[0] && !this.#images?.has(this.#spares[0]) ? this.#spares.shift() : undefined;
    const owner = spare && this.#ownIdentity ? statSync(spare).uid : undefined;
    const { first, count } = this.#uidRange();
    // A spare made before identities (owned by the shared user) gets a fresh one.
    const identity = owner !== undefined && owner >= first && owner < first + count ? { uid: owner, gid: owner, name: `ccp-${owner}` } : undefined;
    const made = identity ?? (this.#ownIdentity ? this.#allocateIdentity() : this.#o.runAs);
    try {
      makeDir(root, 0o700, made);
    } finally {
      if (made) this.#reserved.delete(made.uid);
    }
    if (spare) renameSync(spare, data);
    else await copyTree(this.#o.templateDir, data);
    if (this.#ownIdentity && made && !identity) await chownTree(data, made);
    return made;
  }

  /**
   * Start one server for the warm pool, from a spare copy or the template. It has
   * archive_mode on (fixed at start) but no archive target: a claim sets the
   * database's own with ALTER SYSTEM and a reload.
   */
  async #startPooled(): Promise<boolean> {
    const root = path.join(this.#o.instancesDir, `.pool-${randomBytes(6).toString("hex")}`);
    const data = path.join(root, "data");
    const run = path.join(root, "run");
    const log = path.join(root, "log");
    let server: PostgresServer | undefined;
    try {
      // Its own uid from the start (its spare's), so a claim needs no chown.
      const identity = await this.#takeSpare(root, data, this.#o.defaultLimits?.storageBytes, false);
      // Known once its folder is (or is not) an image.
      const archive = this.#poolArchive(root);
      makeDir(run, 0o700, identity);
      makeDir(log, 0o700, identity);
      makeDir(archive, 0o700, identity);
      // Its log directory is the one its database's folder (a link to this one) will name.
      server = new PostgresServer(
        this.#serverOptions(
          data,
          run,
          path.join(root, "postgres.log"),
          { log_directory: log, ...this.#archiveModeSettings(), ...postgresSettingsFor(this.#o.defaultLimits ?? {}) },
          identity,
          // Its database's log and archive folders are links to these (see #claim).
          this.#jailFor(root, data, () => [data, run, log, archive], identity, () => this.#readLimits(root) ?? this.#o.defaultLimits ?? {}),
        ),
      );
      // The claim writes the database's own settings here and signals a reload: no connection, no restart.
      appendFileSync(path.join(data, "postgresql.conf"), `include_if_exists = '${INSTANCE_CONF}'\n`);
      if (this.#closed) throw new Error("driver closed");
      await server.start();
      if (this.#closed) throw new Error("driver closed");
      this.#pool.push({ root, server });
      return true;
    } catch {
      await server?.stop().catch(() => undefined);
      await this.#forgetSandbox(root).catch(() => undefined);
      await this.#removeFolder(root).catch(() => undefined);
      return false;
    }
  }

  /** How many pre-started servers are ready to be claimed (tests, bench). */
  get warmPoolSize(): number {
    return this.#pool.length;
  }

  #serverOptions(dataDir: string, socketDir: string, logFile: string, settings: Record<string, string>, runAs: RunAs | undefined, jail?: PostgresServerOptions["jail"]): PostgresServerOptions {
    return {
      bin: this.#o.bin,
      dataDir,
      socketDir,
      logFile,
      runAs,
      ccpdOsUser: this.#o.ccpdOsUser,
      settings: { ...INSTANCE_SETTINGS, ...settings },
      ...(jail ? { jail } : {}),
    };
  }

  get pgVersion(): string {
    return this.#o.bin.version;
  }

  #paths(id: string) {
    if (!ID_DIR.test(id)) throw new Error(`Not an instance id: ${id}`);
    const root = path.join(this.#o.instancesDir, id);
    return { root, data: path.join(root, "data"), run: path.join(root, "run"), log: path.join(root, "postgres.log"), logDir: path.join(root, "log") };
  }

  #server(id: string): PostgresServer {
    let server = this.#servers.get(id);
    if (!server) {
      const p = this.#paths(id);
      const identity = existsSync(p.root) ? this.#identityOf(p.root) : this.#o.runAs;
      const jail = existsSync(p.root) ? this.#jailFor(p.root, p.data, () => this.#readWrite(id), identity, () => this.limits(id)) : undefined;
      server = new PostgresServer(this.#serverOptions(p.data, p.run, p.log, { log_directory: p.logDir, ...this.#archiveSettings(id), ...postgresSettingsFor(this.limits(id)) }, identity, jail));
      this.#watch(id, server);
      this.#servers.set(id, server);
    }
    return server;
  }

  #watch(id: string, server: PostgresServer): void {
    server.onUnexpectedExit((info) => void this.#restart(id, info.code, info.signal));
  }

  /** archive_mode is fixed when a server starts; the rest of the archive settings can change with a reload. */
  #archiveModeSettings(): Record<string, string> {
    if (!this.#o.walArchiveDir) return {};
    return { archive_mode: "on", archive_library: "basic_archive", archive_timeout: String(this.#o.archiveTimeoutS ?? 60) };
  }

  #archiveDir(id: string): string | undefined {
    const dir = this.#o.walArchiveDir?.(id);
    if (!dir) return undefined;
    // The parent (one folder per database in the store) only needs to be traversable by the instance user.
    makeDir(path.dirname(dir), 0o711, undefined);
    makeDir(dir, 0o700, existsSync(this.#paths(id).root) ? this.ownerOf(id) : this.#o.runAs);
    return dir;
  }

  /** What a sandboxed instance may write: its data, socket, log and WAL archive folders. */
  #readWrite(id: string): string[] {
    const p = this.#paths(id);
    const archive = this.#archiveDir(id);
    return [p.data, p.run, p.logDir, ...(archive ? [archive] : [])];
  }

  /** Remove a server's cgroup and sandbox folder (it has stopped). */
  async #forgetSandbox(root: string): Promise<void> {
    let name: string;
    try {
      name = this.#groupName(root);
    } catch {
      return; // its folder is gone already
    }
    await this.#cgroups?.remove(name);
    const dir = path.join(this.#o.instancesDir, ".jail", name);
    try {
      rmdirSync(path.join(dir, "root"));
    } catch {
      // absent, or still mounted in a sandbox that has not ended yet
    }
    rmSync(path.join(dir, "lock"), { force: true });
    try {
      rmdirSync(dir);
    } catch {
      // not empty or absent
    }
  }

  #archiveSettings(id: string): Record<string, string> {
    const dir = this.#archiveDir(id);
    return dir ? { ...this.#archiveModeSettings(), "basic_archive.archive_directory": dir } : {};
  }

  #setState(id: string, state: InstanceState): void {
    this.events.emit("state", { id, state });
  }

  async #restart(id: string, exitCode: number | null, signal: string | null): Promise<void> {
    if (!this.#supervised.has(id)) return;
    this.events.emit("exit", { id, exitCode, signal, at: new Date() });
    this.#starting.add(id);
    this.#setState(id, "starting");
    try {
      this.#grantReserve(id);
    } catch {
      // not mounted: nothing to lend
    }
    try {
      // Backends of a killed postmaster may hold its shared memory for a moment;
      // retry with back-off until the new postmaster gets it.
      for (let delay = 50; this.#supervised.has(id); delay = Math.min(delay * 2, 5_000)) {
        await sleep(delay);
        if (!this.#supervised.has(id)) return;
        try {
          await this.#server(id).start();
          this.#failed.delete(id);
          this.events.emit("restart", { id });
          this.#setState(id, "running");
          return;
        } catch (err) {
          this.#failed.add(id);
          this.events.emit("restart", { id, error: err as Error });
        }
      }
    } finally {
      this.#starting.delete(id);
    }
  }

  /**
   * A pre-started server when one is ready (renamed into place and given this
   * database's archive target, without a restart), else a spare copy of the
   * template, else a fresh copy.
   */
  async create(id: string, limits: InstanceLimits = {}): Promise<void> {
    const p = this.#paths(id);
    if (existsSync(p.root)) throw new Error(`Instance directory already exists: ${p.root}`);
    // A pre-started server runs with the default limits' settings: an instance whose limits need others is copied and started.
    if (!sameSettings(postgresSettingsFor(limits), postgresSettingsFor(this.#o.defaultLimits ?? {}))) {
      await this.#createFromCopy(id, limits.storageBytes);
      this.#writeLimits(id, limits);
      return;
    }
    for (let pooled = this.#pool.shift(); pooled; pooled = this.#pool.shift()) {
      if (!pooled.server.running) {
        await this.#removeFolder(pooled.root);
        continue;
      }
      try {
        await this.#claim(id, pooled);
        this.#writeLimits(id, limits);
        this.#refill();
        return;
      } catch {
        // Not usable: drop it (nothing of it reached a database) and take the copy path.
        this.#supervised.delete(id);
        this.#servers.delete(id);
        await pooled.server.stop().catch(() => undefined);
        rmSync(p.root, { force: true });
        await this.#removeFolder(pooled.root).catch(() => undefined);
        break;
      }
    }
    await this.#createFromCopy(id, limits.storageBytes);
    this.#writeLimits(id, limits);
  }

  async #createFromCopy(id: string, storageBytes: number | undefined): Promise<void> {
    const p = this.#paths(id);
    const identity = await this.#takeSpare(p.root, p.data, storageBytes);
    makeDir(p.run, 0o700, identity);
    this.#refill();
  }

  async #claim(id: string, pooled: PooledServer): Promise<void> {
    const p = this.#paths(id);
    symlinkSync(path.basename(pooled.root), p.root);
    // Later starts (wakes) carry the archive target on the command line, as every instance's do,
    // and (sandboxed) see the database's own folders: its archive is no longer the pool slot's.
    const poolData = path.join(pooled.root, "data");
    const poolRun = path.join(pooled.root, "run");
    const jail = this.#jailFor(pooled.root, poolData, () => [poolData, poolRun, ...this.#readWrite(id).slice(2)], this.#identityOf(pooled.root), () => this.limits(id));
    const archive = this.#o.walArchiveDir?.(id);
    const settings = { ...INSTANCE_SETTINGS, log_directory: p.logDir, ...(archive ? { ...this.#archiveModeSettings(), "basic_archive.archive_directory": archive } : {}) };
    pooled.server.relocate({ settings, ...(jail ? { jail } : {}) });
    this.#watch(id, pooled.server);
    this.#servers.set(id, pooled.server);
    this.#supervised.add(id);
    const pid = pooled.server.pid;
    const owner = this.ownerOf(id);
    let dir = this.#o.walArchiveDir?.(id);
    if (dir) {
      if (!pid) throw new Error("the pre-started server is gone");
      if (pooled.server.sandboxed) {
        // The running sandbox sees only the folders bound at its start: its pool archive folder
        // becomes the database's (a rename keeps the directory it has bound), under its pool path.
        makeDir(path.dirname(dir), 0o711, undefined);
        if (existsSync(dir)) rmdirSync(dir); // made empty by an earlier attempt; anything in it stops the claim
        renameSync(this.#poolArchive(pooled.root), dir);
        dir = this.#poolArchive(pooled.root);
      } else {
        this.#archiveDir(id);
      }
      // The same value the command line carries on every later start; a reload (SIGHUP, as pg_reload_conf) applies it now.
      const conf = path.join(p.data, INSTANCE_CONF);
      writeFileSync(conf, `basic_archive.archive_directory = '${dir.replaceAll("'", "''")}'\n`, { mode: 0o600 });
      if (owner) chownSync(conf, owner.uid, owner.gid);
      process.kill(pid, "SIGHUP");
    }
  }

  async start(id: string, once?: StartOptions): Promise<InstanceEndpoint> {
    const p = this.#paths(id);
    if (!this.#servers.get(id)?.running) await this.#fitBeforeStart(id);
    if (!existsSync(p.data)) throw new Error(`Instance ${id} has no data directory (${p.data}).`);
    const owner = this.ownerOf(id);
    makeDir(p.run, 0o700, owner);
    makeDir(p.logDir, 0o700, owner);
    pruneLogs(p.logDir);
    this.#supervised.add(id);
    const server = this.#server(id);
    const already = server.running;
    if (!already) {
      this.#starting.add(id);
      this.#setState(id, "starting");
    }
    const staged = path.join(p.root, RESTORE_WAL);
    try {
      await server.start(already ? {} : await this.#startOnce(id, server, once, staged));
    } catch (err) {
      this.#supervised.delete(id);
      this.#setState(id, await this.state(id));
      throw err;
    } finally {
      if (!already) this.#starting.delete(id);
      rmSync(staged, { recursive: true, force: true });
    }
    this.#failed.delete(id);
    rmSync(path.join(p.root, SUSPENDED_MARKER), { force: true });
    if (!already) this.#setState(id, "running");
    return this.endpoint(id);
  }

  /**
   * Before a start: the image resized (offline: nothing uses it now) when its limit
   * moved outside what it gives live, its room fitted. A shrink the data does not
   * fit is left for a later start (the soft quota holds meanwhile).
   */
  async #fitBeforeStart(id: string): Promise<void> {
    const limits = this.limits(id);
    if (this.#fitRoom(id, limits) === "resize" && this.#images && limits.storageBytes !== undefined) {
      if (await this.#images.resize(this.#folder(id), imageRoom(limits.storageBytes))) return;
      this.#fitRoom(id, limits);
    }
  }

  /**
   * This start's settings. A recovery start reads archived WAL: a sandboxed
   * server through the launcher's restricted restore command, from a copy
   * its own uid can read (the archive is another database's, or the store's);
   * a plain one with `cp` from the archive itself.
   */
  async #startOnce(id: string, server: PostgresServer, once: StartOptions = {}, staged: string): Promise<StartOnce> {
    const { restoreWalFrom, ...rest } = once;
    if (restoreWalFrom === undefined) return rest;
    if (!server.sandboxed) return { ...rest, settings: { ...rest.settings, restore_command: `cp ${shellQuote(restoreWalFrom)}/%f %p` } };
    rmSync(staged, { recursive: true, force: true });
    if (existsSync(restoreWalFrom)) await copyArchive(restoreWalFrom, staged);
    else makeDir(staged, 0o700, undefined);
    const owner = this.ownerOf(id);
    if (owner) await chownTree(staged, owner);
    return { ...rest, settings: { ...rest.settings, restore_command: JAIL_RESTORE_COMMAND }, restoreDir: staged };
  }

  async suspend(id: string): Promise<void> {
    const p = this.#paths(id);
    // The marker first: a ccpd killed during the stop finds the instance asleep, not "stopped".
    writeFileSync(path.join(p.root, SUSPENDED_MARKER), `${new Date().toISOString()}\n`);
    this.#supervised.delete(id);
    await this.#server(id).stop();
    await this.#forgetSandbox(p.root);
    this.#setState(id, "suspended");
  }

  async stop(id: string): Promise<void> {
    this.#supervised.delete(id);
    await this.#server(id).stop();
    if (ID_DIR.test(id) && existsSync(this.#paths(id).root)) {
      rmSync(path.join(this.#paths(id).root, SUSPENDED_MARKER), { force: true });
      await this.#forgetSandbox(this.#paths(id).root);
    }
    this.#setState(id, await this.state(id));
  }

  async destroy(id: string): Promise<void> {
    this.#supervised.delete(id);
    await this.#server(id).stop();
    this.#servers.delete(id);
    const { root } = this.#paths(id);
    // A claimed pre-started server: the folder the link points at goes too.
    const target = existsSync(root) && lstatSync(root).isSymbolicLink() ? path.resolve(this.#o.instancesDir, readlinkSync(root)) : undefined;
    await this.#forgetSandbox(root);
    if (target) rmSync(root, { force: true });
    await this.#removeFolder(target ?? root);
    this.#setState(id, "absent");
  }

  /** An instance's recorded limits ({} when none were set). */
  limits(id: string): InstanceLimits {
    return this.#readLimits(this.#paths(id).root) ?? {};
  }

  #readLimits(root: string): InstanceLimits | undefined {
    try {
      return JSON.parse(readFileSync(path.join(root, LIMITS_FILE), "utf8")) as InstanceLimits;
    } catch {
      return undefined;
    }
  }

  /** Record the limits; those the kernel enforces are applied at once to a running server's cgroup (returned). */
  #writeLimits(id: string, limits: InstanceLimits): (keyof InstanceLimits)[] {
    const { root, data } = this.#paths(id);
    writeFileSync(path.join(root, LIMITS_FILE), `${JSON.stringify(limits)}\n`, { mode: 0o600 });
    const server = this.#servers.get(id);
    if (!this.#cgroups || !server?.running || !server.sandboxed) return [];
    const name = this.#groupName(root);
    return this.#cgroups.exists(name) ? this.#cgroups.apply(name, limits, data) : [];
  }

  /**
   * Kernel limits (memory, CPU, processes, I/O where cgroup v2) apply at once to
   * a running sandboxed server; Postgres settings that follow them (shared_buffers,
   * max_connections) and anything this host does not enforce, at the next start.
   */
  async setLimits(id: string, limits: InstanceLimits): Promise<LimitsApplied> {
    if (!existsSync(this.#paths(id).root)) throw new Error(`Instance ${id} does not exist.`);
    const live = this.#writeLimits(id, limits);
    const server = this.#servers.get(id);
    const p = this.#paths(id);
    server?.relocate({ settings: { ...INSTANCE_SETTINGS, log_directory: p.logDir, ...this.#archiveSettings(id), ...postgresSettingsFor(limits) } });
    // The image's room (the hard storage bound): live, or not yet (lowered under what the database holds, or past the image's capacity).
    const room = this.#fitRoom(id, limits);
    if (room === "live" && limits.storageBytes !== undefined) live.push("storageBytes");
    // Memory's hard limit holds at once, the Postgres settings that follow it (shared_buffers …) from the next start: both.
    const settingsFollow = (k: keyof InstanceLimits) => k === "memoryBytes" || k === "connections";
    const keys = (Object.keys(limits) as (keyof InstanceLimits)[]).filter((k) => k !== "storageBytes" || room !== undefined);
    return { live, nextStart: keys.filter((k) => !live.includes(k) || settingsFollow(k)) };
  }

  /** Storage is the data dir's size (data and WAL); memory, CPU time and processes as the instance's cgroup counts them while it runs. */
  async usage(id: string): Promise<InstanceUsage> {
    const { root, data } = this.#paths(id);
    const counted = this.#cgroups && this.#servers.get(id)?.running && existsSync(root) ? this.#cgroups.usage(this.#groupName(root)) : {};
    // The storage quota samples every database: the moment to bring a room lowered (or a reserve) back to the limit as
    // space is freed, and to lend the reserve to a database its image stopped (see #grantReserve).
    if (this.#images && existsSync(root)) {
      try {
        this.#fitRoom(id, this.limits(id));
        this.#grantReserve(id);
      } catch {
        // not mounted (a failed re-mount): its usage is still read
      }
    }
    return { ...counted, storageBytes: treeSize(data) };
  }

  /** The directories of an instance's cgroup (tests read the kernel's own accounting there); undefined without cgroups. */
  cgroupDirs(id: string): Record<string, string> | undefined {
    return this.#cgroups?.dirs(this.#groupName(this.#paths(id).root));
  }

  /**
   * What is in force, as found at start-up by doing it (the launcher's probe
   * makes a whole sandbox; cgroup controllers are enabled and their groups made).
   */
  isolation(): readonly IsolationFeature[] {
    const { first, count } = this.#uidRange();
    const shared = this.#o.runAs ? `every instance runs as the one OS user "${this.#o.runAs.name}"` : "instances run as ccpd's own OS user";
    const identity: IsolationFeature = this.#ownIdentity
      ? { name: "identity", enforced: true, detail: `each database's Postgres runs as its own uid (from ${first}-${first + count - 1}), its folders 0700 owned by it; the catalog as "${this.#o.runAs?.name ?? ""}"` }
      : { name: "identity", enforced: false, detail: `${shared}: ${this.#identityWhy}` };
    const sandbox = (name: string, what: string): IsolationFeature =>
      this.#jail ? { name, enforced: true, detail: `${what} (native/jail.c)` } : { name, enforced: false, detail: this.#jailWhy };
    const limit = (name: "memory" | "cpu" | "pids" | "io"): IsolationFeature => {
      const f = this.#cgroups?.features().find((x) => x.name === name);
      if (!f) return { name, enforced: false, detail: this.#cgroupsWhy };
      if (name !== "memory" || !f.enforced) return f;
      const oom = this.#jail?.oomShield
        ? "the postmaster is exempt from the OOM killer (oom_score_adj -1000)"
        : "the postmaster cannot be made exempt from the OOM killer here (no CAP_SYS_RESOURCE), so its children raise their oom_score_adj to 1000 and are killed first";
      return { ...f, detail: `${f.detail}; over the limit a backend is killed and the instance recovers by itself; ${oom}` };
    };
    return [
      identity,
      sandbox("mount-namespace", "own mount namespace: the Postgres binaries and system libraries read-only, its own data, socket, log and WAL archive folders, a private /tmp and /dev/shm; nothing else of the host"),
      sandbox("root", "pivot_root into a private read-only root (tmpfs), no shell"),
      sandbox("pid-namespace", "own pid namespace: it sees only its own processes"),
      sandbox("ipc-namespace", "own IPC namespace"),
      sandbox("net-namespace", "own network namespace without interfaces: no route out; clients reach it by its unix socket"),
      limit("memory"),
      limit("cpu"),
      limit("pids"),
      limit("io"),
      this.#storageFeature(),
    ];
  }

  #storageFeature(): IsolationFeature {
    if (!this.#images) return { name: "storage", enforced: false, detail: `no filesystem image per database: ${this.#imagesWhy}` };
    const limit = this.#o.defaultLimits?.storageBytes;
    const example = limit === undefined ? "" : ` (${gib(imageRoom(limit))} GiB for the default ${gib(limit)} GiB)`;
    // Databases made before this host had images keep a plain folder: say which, rather than claim a bound they lack.
    const images = this.#images;
    const plain = readdirSync(this.#o.instancesDir).filter((name) => {
      if (!ID_DIR.test(name)) return false;
      try {
        return !images.has(realpathSync(path.join(this.#o.instancesDir, name)));
      } catch {
        return false; // removed meanwhile
      }
    });
    const without = plain.length === 0 ? "" : `; ${plain.length} database${plain.length === 1 ? "" : "s"} made before images (${plain.slice(0, 5).join(", ")}${plain.length > 5 ? ", …" : ""}) ha${plain.length === 1 ? "s" : "ve"} no image and only the soft quota`;
    return {
      name: "storage",
      enforced: true,
      detail:
        `hard: each database's folder is its own loop-mounted ext4 image (sparse); Postgres may fill its storage limit + WAL headroom (3 x max_wal_size, which is 1/8 of the limit within 64 MiB-1 GiB) + 64 MiB for logs${example}, ` +
        `past that its writes fail with ENOSPC (no other database is affected)${without}`,
    };
  }

  /** The instance's data directory (backups copy from it and restore into it). */
  dataDir(id: string): string {
    return this.#paths(id).data;
  }

  /** Make an empty instance directory (run dir included, its own identity) for a restore to fill. */
  prepareEmpty(id: string): string {
    const p = this.#paths(id);
    if (existsSync(p.root)) throw new Error(`Instance directory already exists: ${p.root}`);
    const storage = this.#o.defaultLimits?.storageBytes;
    let identity: RunAs | undefined;
    if (this.#images && storage !== undefined) {
      // An image for the default limit, its whole capacity open while a restore or copy fills it (its size is not
      // known yet); setLimits then fits the room to the database's own limit (or to what it holds, until it frees space).
      identity = this.#allocateIdentity();
      try {
        this.#images.makeSync(p.root, imageRoom(storage), identity);
        this.#images.setRoom(p.root, this.#images.capacityRoom(p.root));
      } finally {
        this.#reserved.delete(identity.uid);
      }
    } else {
      identity = this.#makeOwnedRoot(p.root);
    }
    makeDir(p.run, 0o700, identity);
    return p.root;
  }

  /** The Postgres binaries instances run (tests compare the sandbox's root with what it binds). */
  get bin(): PgBinaries {
    return this.#o.bin;
  }

  get runAs(): RunAs | undefined {
    return this.#o.runAs;
  }

  async state(id: string): Promise<InstanceState> {
    return this.stateNow(id);
  }

  /** state() without the promise: the process driver knows at once. */
  stateNow(id: string): InstanceState {
    if (this.#starting.has(id)) return "starting";
    if (this.#servers.get(id)?.running) return "running";
    const p = this.#paths(id);
    if (!existsSync(p.data)) return "absent";
    if (this.#failed.has(id)) return "failed";
    return existsSync(path.join(p.root, SUSPENDED_MARKER)) ? "suspended" : "stopped";
  }

  endpoint(id: string): ProcessEndpoint {
    const socketDir = this.#paths(id).run;
    return { transport: { kind: "unix", socketDir, port: SOCKET_PORT }, admin: { user: ADMIN_ROLE }, socketDir, port: SOCKET_PORT, adminUser: ADMIN_ROLE };
  }

  /** Where the instance writes its JSON log files (observability/logs.ts reads them). */
  logDir(id: string): string {
    return this.#paths(id).logDir;
  }

  /** PID of the running postmaster (tests kill it to exercise supervision). */
  pid(id: string): number | undefined {
    return this.#servers.get(id)?.pid;
  }

  async list(): Promise<string[]> {
    return readdirSync(this.#o.instancesDir).filter((name) => ID_DIR.test(name));
  }

  async shutdown(): Promise<void> {
    this.#closed = true;
    await this.#refilling;
    this.#supervised.clear();
    const pooled = this.#pool.splice(0);
    await Promise.all([...this.#servers.values(), ...pooled.map((p) => p.server)].map((s) => s.stop()));
    for (const id of this.#servers.keys()) await this.#forgetSandbox(this.#paths(id).root).catch(() => undefined);
    for (const p of pooled) {
      await this.#forgetSandbox(p.root).catch(() => undefined);
      await this.#removeFolder(p.root).catch(() => undefined);
    }
    this.#cgroups?.leaveSelf();
    // Nothing stays mounted after ccpd (its data dir can be moved or removed); the next start mounts them again.
    for (const name of this.#images?.folders() ?? []) await this.#images?.unmount(path.join(this.#o.instancesDir, name)).catch(() => undefined);
    this.#cgroups?.removeScope();
  }
}

function gib(bytes: number): string {
  return (bytes / 1024 ** 3).toFixed(2).replace(/\.?0+$/, "");
}

function sameSettings(a: Record<string, string>, b: Record<string, string>): boolean {
  const keys = Object.keys(a);
  return keys.length === Object.keys(b).length && keys.every((k) => a[k] === b[k]);
}

/** Bytes of the regular files under a directory (symlinks not followed). */
export function treeSize(dir: string): number {
  let total = 0;
  const stack = [dir];
  for (let d = stack.pop(); d !== undefined; d = stack.pop()) {
    let entries;
    try {
      entries = readdirSync(d, { withFileTypes: true });
    } catch {
      continue;
    }
    for (const e of entries) {
      const full = path.join(d, e.name);
      if (e.isDirectory()) stack.push(full);
      else if (e.isFile()) {
        try {
          total += statSync(full).size;
        } catch {
          // removed meanwhile
        }
      }
    }
  }
  return total;
}

/**
 * Keep an instance's log directory within LOG_LIMITS: files older than the age
 * limit go, then the oldest until the rest fit the size limit. The newest file
 * (the one Postgres writes) always stays. Called at each start and by the log
 * reader, so a long-running instance is bounded too.
 */
export function pruneLogs(dir: string, limits: { maxBytes: number; maxAgeDays: number } = LOG_LIMITS, now = Date.now()): void {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.startsWith("postgresql-"));
  } catch {
    return;
  }
  const files = names
    .map((name) => {
      try {
        const st = statSync(path.join(dir, name));
        return { name, size: st.size, mtime: st.mtimeMs };
      } catch {
        return undefined;
      }
    })
    .filter((f) => f !== undefined)
    .sort((a, b) => b.name.localeCompare(a.name)); // newest first: names carry the start time
  let total = 0;
  for (const [i, f] of files.entries()) {
    total += f.size;
    if (i === 0) continue;
    if (total > limits.maxBytes || now - f.mtime > limits.maxAgeDays * 86_400_000) rmSync(path.join(dir, f.name), { force: true });
  }
}
