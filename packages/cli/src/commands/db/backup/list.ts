import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { backupsPath, backupTime, type BackupView } from "../../../backups.js";
import { backupDbIdOption, jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { backupTarget } from "../../../target.js";

export function register(backup: Command): Command {
  return backup
    .command("list")
    .alias("ls")
    .description("list backups, newest first")
    .addOption(backupDbIdOption())
    .addOption(jsonOption())
    .action(async (o: { dbId?: string; json?: boolean }) => printBackupList(Output.for(o), await listBackups(new ApiClient(), backupTarget(o.dbId)), o.dbId));
}

/** `ccp db backup list` / `ls`: newest first. */
export async function listBackups(api: ApiClient, ref: string): Promise<BackupView[]> {
  return (await api.request<{ backups: BackupView[] }>("GET", backupsPath(ref))).backups;
}

/** `dbId`: the --db-id given, repeated in the hint of an empty list. */
export function printBackupList(out: Output, backups: readonly BackupView[], dbId?: string): void {
  out.result({ backups }, () => {
    if (backups.length === 0) {
      const flag = dbId === undefined ? "" : ` --db-id ${dbId}`;
      out.note(`No backups yet. Take one now with \`ccp db backup create${flag}\`; ccpd also takes one daily unless started with --backup-at off.`);
      return;
    }
    const kindWidth = Math.max(...backups.map((b) => b.kind.length));
    for (const b of backups) out.line(`• ${b.id} ${b.kind.padEnd(kindWidth)} ${backupTime(b.created_at)}`);
  });
}
