import { isCcpError, userConfigPath, VERSION } from "@ccp/server/client-side";
import type { ServerOptions } from "@ccp/server";
import { CliError, EXIT } from "../../errors.js";
import type { Output } from "../../output.js";

/** `ccp server start` (and `npm start`): run ccpd in the foreground until SIGINT/SIGTERM. */
export async function runServer(out: Output, options: ServerOptions): Promise<number> {
  // Loaded here, not at the top: only this command needs Fastify, pg and pino (every other command starts as fast as Node).
  const { resolveServerConfig, startServer } = await import("@ccp/server");
  const config = resolveServerConfig(options);
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer(config);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === "EADDRINUSE") {
      throw new CliError("port_in_use", `Port ${config.port} on ${config.listen} is already in use.`, {
        hint: "Is ccpd already running (`ccp server status`)? Otherwise pass another --port.",
        exitCode: EXIT.unavailable,
      });
    }
    // A refusal with a reason (another ccpd on the data dir: conflict) keeps its exit code.
    if (isCcpError(err)) throw new CliError(err.code, `ccpd could not start: ${err.message}`, { hint: err.hint ?? `Data dir: ${config.dataDir}` });
    throw new CliError("start_failed", `ccpd could not start: ${e.message}`, { hint: `Data dir: ${config.dataDir}` });
  }
  out.line(`${out.style("green", "✓")} ccpd ${VERSION} is up`);
  out.line();
  out.fields([
    ["API + SQL over HTTP", server.url],
    ["Postgres protocol", `${config.listen}:${server.wirePort} (TLS certificate: ${server.tlsCertFile})`],
    ["Data dir", config.dataDir],
    ["Domain", config.domain],
    ...(config.catalogUrl ? [["Catalog", "external (--catalog-url)"] as [string, string]] : []),
  ]);
  out.line();
  if (server.createdAdminKey) out.success(`Admin API key created and saved to ${userConfigPath()}`);
  out.note("Stop with Ctrl+C; running databases stop cleanly and come back on the next start.");

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      out.note(`\n${signal}: stopping databases…`);
      void server.close().then(resolve);
    };
    process.once("SIGINT", () => stop("SIGINT"));
    process.once("SIGTERM", () => stop("SIGTERM"));
  });
  out.note("ccpd stopped.");
  return 0;
}
