import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { resolveServerConfig, startServer, type RunningServer, type ServerConfig, type ServerOptions } from "../../src/index.js";

export interface TestServer {
  /** The running ccpd (a new one after `restart`). */
  readonly server: RunningServer;
  readonly root: string;
  /** The admin key ccpd created on its first start. */
  readonly adminKey: string;
  /** `fetch` against ccpd's HTTP port. */
  http(pathname: string, init?: RequestInit): Promise<Response>;
  /** Stop ccpd and start it again on the same data dir and config, as a restart of the daemon does. */
  restart(): Promise<RunningServer>;
  dispose(): Promise<void>;
}

/**
 * A ccpd on a fresh data dir, both ports chosen by the kernel, logs silenced,
 * no daily backup. `options` are ccpd's own (as `ccp server start` takes them);
 * `tweak` edits the resolved config (gateway settings …).
 */
export async function startTestServer(
  name: string,
  options: ServerOptions = {},
  tweak: (c: ServerConfig) => ServerConfig = (c) => c,
): Promise<TestServer> {
  const root = mkdtempSync(path.join(os.tmpdir(), `ccp-${name}-`));
  const config = resolveServerConfig(
    { dataDir: path.join(root, "data"), port: 0, wirePort: 0, backupAt: "off", ...options },
    { ...process.env, XDG_CONFIG_HOME: path.join(root, "config"), CCP_LOG_LEVEL: "silent" },
  );
  let server = await startServer(tweak(config));
  const adminKey = server.createdAdminKey as string;
  return {
    get server() {
      return server;
    },
    root,
    adminKey,
    http: (pathname, init) => fetch(`${server.url}${pathname}`, init),
    restart: async () => {
      await server.close();
      server = await startServer(tweak(config));
      return server;
    },
    dispose: async () => {
      await server.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
