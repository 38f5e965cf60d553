import { chmodSync, mkdirSync, readdirSync, rmSync, statSync } from "node:fs";
import path from "node:path";

/** A WAL segment's file name (timeline, then segment number: 24 hex digits), in pg_wal and in the archive. */
export const WAL_SEGMENT = /^[0-9A-F]{24}$/;

/**
 * Where backups live. `dir` (a directory in ccpd's data dir) is the default;
 * S3-compatible storage comes later behind this same interface.
 *
 * WAL is archived by Postgres itself (basic_archive) into `walDir`, a local
 * directory; a remote store would upload from there.
 */
export interface BackupStore {
  readonly kind: string;
  /** Local directory the instance's archiver writes WAL segments to. */
  walDir(databaseId: string): string;
  /** Directory that holds one base backup (its manifest and files). */
  backupDir(databaseId: string, backupId: string): string;
  removeBackup(databaseId: string, backupId: string): void;
  /** WAL file names archived for a database, sorted. */
  listWal(databaseId: string): string[];
  removeWal(databaseId: string, names: readonly string[]): void;
  /** Everything stored for a database (its own destroy). */
  removeAll(databaseId: string): void;
  /** Bytes used by a backup. */
  size(databaseId: string, backupId: string): number;
}

export class DirBackupStore implements BackupStore {
  readonly kind = "dir";
  readonly #root: string;

  constructor(root: string) {
    this.#root = root;
    // Each database's uid traverses it to its own WAL archive; none may list it (the other databases' ids).
    mkdirSync(root, { recursive: true, mode: 0o711 });
    chmodSync(root, 0o711);
  }

  walDir(databaseId: string): string {
    return path.join(this.#root, databaseId, "wal");
  }

  backupDir(databaseId: string, backupId: string): string {
    return path.join(this.#root, databaseId, "base", backupId);
  }

  removeBackup(databaseId: string, backupId: string): void {
    rmSync(this.backupDir(databaseId, backupId), { recursive: true, force: true });
  }

  listWal(databaseId: string): string[] {
    try {
      return readdirSync(this.walDir(databaseId)).filter((n) => !n.startsWith(".")).sort();
    } catch {
      return [];
    }
  }

  removeWal(databaseId: string, names: readonly string[]): void {
    for (const n of names) rmSync(path.join(this.walDir(databaseId), n), { force: true });
  }

  removeAll(databaseId: string): void {
    rmSync(path.join(this.#root, databaseId), { recursive: true, force: true });
  }

  size(databaseId: string, backupId: string): number {
    let total = 0;
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else total += statSync(p).size;
      }
    };
    try {
      walk(this.backupDir(databaseId, backupId));
    } catch {
      return 0;
    }
    return total;
  }
}
