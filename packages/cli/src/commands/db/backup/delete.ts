import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { backupPath, type BackupView } from "../../../backups.js";
import { backupDbIdOption, jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { backupTarget } from "../../../target.js";

export function register(backup: Command): Command {
  return backup
    .command("delete")
    .alias("rm")
    .description("delete a backup")
    .argument("<backup>", "backup id (bkp-…)")
    .addOption(backupDbIdOption())
    .addOption(jsonOption())
    .action(async (backupId: string, o: { dbId?: string; json?: boolean }) =>
      printBackupDeleted(Output.for(o), await deleteBackup(new ApiClient(), backupTarget(o.dbId), backupId)),
    );
}

/** `ccp db backup delete` / `rm <bkp>`. */
export async function deleteBackup(api: ApiClient, ref: string, backupId: string): Promise<BackupView> {
  return (await api.request<{ backup: BackupView }>("DELETE", backupPath(ref, backupId))).backup;
}

export function printBackupDeleted(out: Output, b: BackupView): void {
  out.result({ backup: b }, () => out.success(`Deleted backup ${b.id}`));
}
