import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { backupsPath, backupTime, type BackupView } from "../../../backups.js";
import { backupDbIdOption, jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { backupTarget } from "../../../target.js";

export function register(backup: Command): Command {
  return backup
    .command("create")
    .description("take a manual base backup now")
    .addOption(backupDbIdOption())
    .addOption(jsonOption())
    .action(async (o: { dbId?: string; json?: boolean }) => printBackupCreated(Output.for(o), await createBackup(new ApiClient(), backupTarget(o.dbId))));
}

/** `ccp db backup create`: a manual base backup, now. Resolves once it is complete and durable. */
export async function createBackup(api: ApiClient, ref: string): Promise<BackupView> {
  return (await api.request<{ backup: BackupView }>("POST", backupsPath(ref))).backup;
}

export function printBackupCreated(out: Output, b: BackupView): void {
  out.result({ backup: b }, () => {
    out.success("Backup created");
    out.line();
    out.fields([
      ["ID", b.id],
      ["Created", backupTime(b.created_at)],
    ]);
  });
}
