import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { backupPath, type BackupView } from "../../../backups.js";
import { backupDbIdOption, jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { backupTarget } from "../../../target.js";

export function register(backup: Command): Command {
  return backup
    .command("verify")
    .description("restore a backup into a scratch instance, check every file and that Postgres answers, then remove it")
    .argument("<backup>", "backup id (bkp-…)")
    .addOption(backupDbIdOption())
    .addOption(jsonOption())
    .action(async (backupId: string, o: { dbId?: string; json?: boolean }) =>
      printBackupVerified(Output.for(o), await verifyBackup(new ApiClient(), backupTarget(o.dbId), backupId)),
    );
}

export interface VerifyResult {
  readonly backup: BackupView;
  /** Data files checked against the manifest. */
  readonly files: number;
  /** Their size, uncompressed. */
  readonly bytes: number;
}

/** `ccp db backup verify <bkp>`: ccpd restores it into a scratch instance, checks it answers, removes it. */
export async function verifyBackup(api: ApiClient, ref: string, backupId: string): Promise<VerifyResult> {
  return api.request<VerifyResult>("POST", `${backupPath(ref, backupId)}/verify`);
}

export function printBackupVerified(out: Output, r: VerifyResult): void {
  out.result(r, () => {
    const mib = r.bytes / 2 ** 20;
    out.success(`Backup ${r.backup.id} verified: ${r.files} files, ${mib < 10 ? mib.toFixed(1) : Math.round(mib)} MiB, Postgres started and answered`);
  });
}
