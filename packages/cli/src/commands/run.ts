import type { Command } from "commander";
import type { CliRun } from "../command.js";
import { CliError, EXIT, usageError } from "../errors.js";
import { databaseHttpUrl, PROJECT_CONFIG, readProjectConfig } from "../project-config.js";

export function register(ccp: Command, run: CliRun): Command {
  return ccp
    .command("run")
    .description("run a command with DATABASE_URL, DATABASE_TOKEN and DATABASE_ID from .cluster/config.json")
    .argument("<command...>", "the command and its arguments (after --)")
    .passThroughOptions()
    .action(async (command: string[]) => {
      run.code = await runWithDatabase(command);
    });
}

/**
 * `ccp run -- <command>`: run a command with the project's database credentials
 * in its environment (seed 000: "automatically injected as environment
 * variables"): DATABASE_ID, DATABASE_TOKEN, DATABASE_URL (Postgres protocol) and
 * DATABASE_HTTP_URL (SQL over HTTP: `fetch(`${DATABASE_HTTP_URL}/query`, …)`).
 * Exits with the command's exit code.
 */
export async function runWithDatabase(command: readonly string[], cwd = process.cwd()): Promise<number> {
  const [bin, ...args] = command;
  if (!bin) throw usageError("No command given.", "For example: ccp run -- node server.js");
  const project = readProjectConfig(cwd);
  if (!project) {
    throw new CliError("no_project", `No ${PROJECT_CONFIG} in ${cwd}.`, {
      hint: "Create a database here with `ccp db create --name NAME`.",
      exitCode: EXIT.usage,
    });
  }
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    DATABASE_ID: project.databaseId,
    DATABASE_TOKEN: project.token,
    // Configs written before httpUrl was saved get it from what they hold.
    DATABASE_HTTP_URL: project.httpUrl ?? databaseHttpUrl(project.apiUrl, project.databaseId, project.host),
  };
  if (project.databaseUrl) env["DATABASE_URL"] = project.databaseUrl;
  // Loaded here: every other command starts without child_process.
  const { spawn } = await import("node:child_process");
  return new Promise<number>((resolve, reject) => {
    const child = spawn(bin, args, { stdio: "inherit", env, cwd });
    child.on("error", (err: NodeJS.ErrnoException) =>
      reject(
        err.code === "ENOENT"
          ? new CliError("command_not_found", `Command not found: ${bin}`, { exitCode: EXIT.commandNotFound })
          : err,
      ),
    );
    // Forward Ctrl+C / termination to the child instead of dying before it.
    const forward = (signal: NodeJS.Signals) => child.kill(signal);
    process.on("SIGINT", forward);
    process.on("SIGTERM", forward);
    child.on("exit", (code, signal) => {
      process.off("SIGINT", forward);
      process.off("SIGTERM", forward);
      resolve(code ?? (signal ? 128 + (signalNumber(signal) ?? 1) : 1));
    });
  });
}

function signalNumber(signal: NodeJS.Signals): number | undefined {
  return ({ SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 } as Record<string, number>)[signal];
}
