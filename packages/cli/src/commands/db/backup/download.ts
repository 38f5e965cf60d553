import { createWriteStream, renameSync, rmSync, statSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import type { Command } from "commander";
import { ApiClient } from "../../../api.js";
import { CliError, EXIT } from "../../../errors.js";
import { backupDbIdOption, jsonOption } from "../../../options.js";
import { Output } from "../../../output.js";
import { backupTarget } from "../../../target.js";

export function register(backup: Command): Command {
  return backup
    .command("download")
    .description("download a backup as one tar archive that plain PostgreSQL of the same major version starts from")
    .argument("<backup>", "backup id (bkp-…)")
    .requiredOption("-o, --output <file>", "where to write the .tar")
    .addOption(backupDbIdOption())
    .addOption(jsonOption())
    .action(async (backupId: string, o: { dbId?: string; json?: boolean; output: string }) =>
      printDownloaded(Output.for(o), await downloadBackup(new ApiClient(), backupTarget(o.dbId), backupId, o.output)),
    );
}

export interface DownloadResult {
  readonly backupId: string;
  readonly file: string;
  readonly bytes: number;
}

/**
 * `ccp db backup download <bkp> -o FILE`: stream the backup as one tar archive
 * into FILE (written as FILE.partial and renamed when complete). ccpd checks
 * every data file against the manifest as it streams and cuts the response on a
 * mismatch; then nothing is left at FILE and the exit is non-zero.
 */
export async function downloadBackup(api: ApiClient, ref: string, backupId: string, file: string): Promise<DownloadResult> {
  const url = new URL(`${api.target.apiUrl}/v1/databases/${encodeURIComponent(ref)}/backups/${encodeURIComponent(backupId)}/archive`);
  const partial = `${file}.partial`;
  const request = url.protocol === "https:" ? https.request : http.request;
  const res = await new Promise<http.IncomingMessage>((resolve, reject) => {
    const req = request(url, { method: "GET", headers: { authorization: `Bearer ${api.target.token ?? ""}` } }, resolve);
    req.on("error", reject);
    req.end();
  }).catch((err: NodeJS.ErrnoException) => {
    throw new CliError("unreachable", `Cannot reach ccpd at ${api.target.apiUrl} (${err.code ?? err.message}).`, { exitCode: EXIT.unavailable });
  });
  if (res.statusCode !== 200) {
    // Errors come as the API's JSON body: let the common client read and map it.
    res.resume();
    await api.request("GET", url.pathname);
    throw new CliError("bad_response", `ccpd answered HTTP ${res.statusCode} to the download.`);
  }
  // Loaded here: every other command starts without it.
  const { pipeline } = await import("node:stream/promises");
  try {
    // A cut response ("aborted") rejects the pipeline: the archive is incomplete.
    await pipeline(res, createWriteStream(partial, { mode: 0o600 }));
    if (!res.complete) throw new Error("the response ended early");
  } catch (err) {
    rmSync(partial, { force: true });
    throw new CliError("conflict", `Download of ${backupId} stopped before the end (${(err as Error).message}); nothing was written to ${file}.`, {
      hint: "ccpd refuses to send a backup whose files do not match its manifest (see its log); verify it with `ccp db backup verify`, or pick another.",
      exitCode: EXIT.conflict,
    });
  }
  renameSync(partial, file);
  return { backupId, file, bytes: statSync(file).size };
}

export function printDownloaded(out: Output, r: DownloadResult): void {
  out.result({ backup: r.backupId, file: r.file, bytes: r.bytes }, () => {
    const mib = r.bytes / 2 ** 20;
    out.success(`Downloaded ${r.backupId} to ${r.file} (${mib < 10 ? mib.toFixed(1) : Math.round(mib)} MiB tar)`);
    out.note("Start it with plain PostgreSQL: see \"Take your data with you\" in ccp's README.");
  });
}
