import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { resolveServerConfig, startServer, type RunningServer, type ServerConfig, type ServerOptions } from "../../src/index.js";

export interface TestServer {
  readonly server: RunningServer;
  readonly root: string;
  /** The admin key ccpd created on its first start. */
  readonly adminKey: string;
  /** `fetch` against ccpd's HTTP port. */
  http(pathname: string, init?: RequestInit): Promise<Response>;
  dispose(): Promise<void>;
}

/**
 * A ccpd on a fresh data dir, both ports chosen by the kernel, logs silenced,
 * no daily backup. `tweak` edits the resolved config (gateway settings …).
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
  const server = await startServer(tweak(config));
  return {
    server,
    root,
    adminKey: server.createdAdminKey as string,
    http: (pathname, init) => fetch(`${server.url}${pathname}`, init),
    dispose: async () => {
      await server.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
