import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { backupPath, type BackupView } from "../../../backups.js";
import { getDatabase } from "../../../databases.js";
import { CliError, EXIT } from "../../../errors.js";
import { backupDbIdOption, jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { confirm } from "../../../prompt.js";
import { backupTarget } from "../../../target.js";

export function register(backup: Command): Command {
  return backup
    .command("restore")
    .description("replace the database's data with a backup's (id, host and token stay)")
    .argument("<backup>", "backup id (bkp-…)")
    .option("-y, --yes", "do not ask for confirmation")
    .addOption(backupDbIdOption())
    .addOption(jsonOption())
    .action(async (backupId: string, o: { dbId?: string; json?: boolean; yes?: boolean }) =>
      printBackupRestored(Output.for(o), await restoreBackup(new ApiClient(), backupTarget(o.dbId), backupId, { yes: Boolean(o.yes) })),
    );
}

/**
 * `ccp db backup restore <bkp>`: replace the database's data with the
 * backup's (id, host and token stay). Asks first unless `yes`.
 */
export async function restoreBackup(
  api: ApiClient,
  ref: string,
  backupId: string,
  options: { yes: boolean; ask?: (q: string) => Promise<boolean> },
): Promise<BackupView> {
  // The question names the database by id, whatever --db-id held; this also fails early on an unknown one.
  const db = await getDatabase(api, ref);
  if (!options.yes) {
    const ask = options.ask ?? confirm;
    if (!(await ask(`Restore database ${db.id} from ${backupId}? This will overwrite current data.`))) {
      throw new CliError("declined", `Not restored: database ${db.id} is unchanged.`, { exitCode: EXIT.declined });
    }
  }
  return (await api.request<{ backup: BackupView }>("POST", `${backupPath(db.id, backupId)}/restore`)).backup;
}

export function printBackupRestored(out: Output, b: BackupView): void {
  out.result({ backup: b }, () => out.success(`Restored database ${b.database_id} from ${b.id}`));
}
