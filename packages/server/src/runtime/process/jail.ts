import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, realpathSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { PgBinaries } from "./binaries.js";

/**
 * The sandbox a Postgres server runs in (README "Isolation"): ccp's native
 * launcher, native/jail.c, built at `npm install` like the wire forwarder.
 * This module finds it, checks once that it works on this host, and builds
 * its command line.
 */

/** dist/runtime/process/jail.js (or src/…/jail.ts under tsx) → native/build/Release/ccp-jail. */
export function findLauncher(): string | undefined {
  const file = fileURLToPath(new URL("../../../native/build/Release/ccp-jail", import.meta.url));
  return existsSync(file) ? file : undefined;
}

/** What the probe found: the sandbox works (and whether the postmaster is shielded from the OOM killer), or why not. */
export type ProbeResult = { readonly ok: true; readonly oomShield: boolean } | { readonly ok: false; readonly why: string };

/**
 * Make a whole sandbox once (namespaces, private root, identity change) without
 * running anything in it: what `isolation()` reports is what this host really did.
 */
export function probeLauncher(launcher: string, scratch: string, uid: number, readOnly: readonly string[]): ProbeResult {
  mkdirSync(scratch, { recursive: true, mode: 0o700 });
  const args = ["--probe", "--uid", String(uid), "--gid", String(uid), "--root", scratch];
  for (const p of readOnly) args.push("--ro", p);
  const r = spawnSync(launcher, args, { encoding: "utf8", timeout: 10_000 });
  if (r.error) return { ok: false, why: `the launcher could not run (${r.error.message})` };
  if (r.status !== 0 || !r.stdout.startsWith("ok")) return { ok: false, why: (r.stderr.trim() || `the launcher exited with ${r.status}`).replace(/^ccp-jail: /, "") };
  return { ok: true, oomShield: r.stdout.includes("oom-shield") };
}

/** Script libraries some language runtimes read at start-up, by the library that needs them (Debian's paths). */
const RUNTIME_DATA: readonly (readonly [RegExp, string])[] = [[/^libtcl/, "/usr/share/tcltk"]];

/**
 * Host paths a Postgres server needs read-only: its installation (bin, lib,
 * share under one directory, as the npm package has them) and the directories
 * of the system libraries it and its procedural languages (pltcl …: the
 * modules that link runtimes from the host; the others link only the
 * installation's own libraries) need (from `ldd`, so only those), plus the
 * script library of a linked language runtime.
 */
export function readOnlyPaths(bin: PgBinaries): string[] {
  const install = realpathSync(path.dirname(path.dirname(bin.postgres)));
  const paths = new Set<string>([install]);
  const modules = path.join(install, "lib", "postgresql");
  let out = "";
  try {
    const files = [realpathSync(bin.postgres), ...(existsSync(modules) ? readdirSync(modules).filter((f) => /^pl.*\.so$/.test(f)).map((f) => path.join(modules, f)) : [])];
    // ldd exits non-zero when one module links a library this host lacks (plperl without libperl): its output still counts.
    const r = spawnSync("ldd", files, { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] });
    if (r.error) throw r.error;
    out = r.stdout;
  } catch {
    // no ldd: the usual places
    for (const d of ["/lib", "/lib64", "/usr/lib", "/usr/lib64"]) if (existsSync(d)) paths.add(d);
    return [...paths];
  }
  for (const line of out.split("\n")) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)" or "/lib64/ld-linux-x86-64.so.2 (0x…)"
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    if (!m?.[1]) continue;
    const file = m[1];
    if (realpathSync(file).startsWith(`${install}/`)) continue;
    paths.add(path.dirname(file));
    for (const [lib, dir] of RUNTIME_DATA) if (lib.test(path.basename(file)) && existsSync(dir)) paths.add(dir);
  }
  return [...paths].sort();
}

export interface JailSpec {
  readonly launcher: string;
  /** Empty directory the private root is mounted on. */
  readonly rootDir: string;
  /** Held while the sandbox lives: a second server on the same data dir fails to start. */
  readonly lockFile: string;
  /** cgroup directories to join (one per hierarchy). */
  readonly cgroups: readonly string[];
  readonly readOnly: readonly string[];
  readonly readWrite: readonly string[];
  /** NAME:UID:GID lines of the sandbox's /etc/passwd and /etc/group (peer authentication looks the client up by uid). */
  readonly users: readonly string[];
  /** Archived WAL a recovery start reads (through the launcher's restricted `sh`, see jail.c). */
  readonly restoreDir?: string;
}

/** The launcher's command line that runs `postgres args` in the sandbox as uid:gid. */
export function jailCommand(spec: JailSpec, uid: number, gid: number, postgres: string, args: readonly string[]): string[] {
  const out = ["--uid", String(uid), "--gid", String(gid), "--root", spec.rootDir, "--lock", spec.lockFile];
  for (const c of spec.cgroups) out.push("--cgroup", c);
  for (const p of spec.readOnly) out.push("--ro", p);
  for (const p of spec.readWrite) out.push("--rw", p);
  for (const u of spec.users) out.push("--user", u);
  if (spec.restoreDir) out.push("--restore-dir", spec.restoreDir);
  return [...out, "--", realpathSync(postgres), ...args];
}

/** The restore_command of a sandboxed recovery start: the launcher's restricted `sh` runs only this. */
export const JAIL_RESTORE_COMMAND = "ccp-restore %f %p";

function children(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** A process's pid in each pid namespace it is in, outermost first (NSpid of /proc/<pid>/status). */
export function nsPids(pid: number): number[] {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8").split("\n").find((l) => l.startsWith("NSpid:"));
    return line ? line.slice(6).trim().split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

/** Host pid of the postmaster a launcher started (launcher → init → postmaster), given its pid inside the sandbox. */
export function sandboxedPostmaster(launcherPid: number, innerPid: number): number | undefined {
  for (const init of children(launcherPid)) {
    for (const pid of children(init)) if (nsPids(pid).at(-1) === innerPid) return pid;
  }
  return undefined;
}

/**
 * A sandboxed postmaster left running by an earlier ccpd: its postmaster.pid
 * holds its pid inside its namespace, so find it by its working directory (its
 * data dir, at the same path inside) and that inner pid.
 */
export function findSandboxedPostmaster(dataDirs: readonly string[], innerPid: number): number | undefined {
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    try {
      if (!dataDirs.includes(readlinkSync(`/proc/${pid}/cwd`))) continue;
    } catch {
      continue;
    }
    const ns = nsPids(pid);
    if (ns.length > 1 && ns.at(-1) === innerPid) return pid;
  }
  return undefined;
}
