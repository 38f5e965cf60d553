import type { Command } from "commander";
import { registerEntries, type CliRun, type Entry } from "../../command.js";

const VERBS: readonly Entry[] = [
  { names: ["create"], load: () => import("./create.js") },
  { names: ["provision"], load: () => import("./provision.js") },
  { names: ["list", "ls"], load: () => import("./list.js") },
  { names: ["info"], load: () => import("./info.js") },
  { names: ["status"], load: () => import("./status.js") },
  { names: ["logs"], load: () => import("./logs.js") },
  { names: ["insights"], load: () => import("./insights.js") },
  { names: ["reset-password"], load: () => import("./reset-password.js") },
  { names: ["use"], load: () => import("./use.js") },
  { names: ["token"], load: () => import("./token/index.js") },
  { names: ["suspend"], load: () => import("./suspend.js") },
  { names: ["wake"], load: () => import("./wake.js") },
  { names: ["update"], load: () => import("./update.js") },
  { names: ["limits"], load: () => import("./limits.js") },
  { names: ["destroy", "rm"], load: () => import("./destroy.js") },
  { names: ["exec"], load: () => import("./exec.js") },
  { names: ["connect"], load: () => import("./connect.js") },
  { names: ["backup"], load: () => import("./backup/index.js") },
  { names: ["restore"], load: () => import("./restore.js") },
  { names: ["branch"], load: () => import("./branch/index.js") },
  // `migrate new` is a subcommand of `migrate`, registered with it.
  { names: ["migrate"], load: async () => ({ register: registerMigrate }) },
  { names: ["rollback"], load: () => import("./rollback.js") },
];

async function registerMigrate(db: Command, run: CliRun): Promise<void> {
  const [migrate, migrateNew] = await Promise.all([import("./migrate.js"), import("./migrate-new.js")]);
  migrateNew.register(migrate.register(db, run));
}

/** `ccp db …`: create and manage databases. */
export async function register(ccp: Command, run: CliRun, args: readonly string[]): Promise<void> {
  const db = ccp.command("db").description("create and manage databases");
  await registerEntries(db, run, args, VERBS);
}
