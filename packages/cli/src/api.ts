import http from "node:http";
import https from "node:https";
import { readUserConfig, userConfigPath } from "@ccp/server/client-side";
import { CliError, EXIT } from "./errors.js";

export const START_HINT = "Start it with `npm start` in the ccp repository, or `ccp server start`.";

export interface ApiTarget {
  readonly apiUrl: string;
  readonly token: string | undefined;
}

/** API URL and admin key: CCP_API_URL / CCP_API_KEY, else the user config ccpd or `ccp login` wrote. */
export function resolveApiTarget(env: NodeJS.ProcessEnv = process.env): ApiTarget {
  const saved = readUserConfig(env);
  return {
    apiUrl: (env["CCP_API_URL"] || saved?.apiUrl || "http://127.0.0.1:7070").replace(/\/+$/, ""),
    token: env["CCP_API_KEY"] || saved?.token,
  };
}

interface ErrorBody {
  error?: { code?: string; message?: string; hint?: string; [k: string]: unknown };
}

/** A thin client of ccpd's /v1 API for the CLI. */
export class ApiClient {
  readonly target: ApiTarget;

  constructor(target: ApiTarget = resolveApiTarget()) {
    this.target = target;
  }

  async request<T>(method: string, path: string, body?: unknown, options: { auth?: boolean } = {}): Promise<T> {
    const headers: Record<string, string> = {};
    if (options.auth !== false) {
      if (!this.target.token) {
        throw new CliError("unauthorized", `No admin API key for ${this.target.apiUrl}.`, {
          hint: `ccpd saves one in ${userConfigPath()} on its first start; for a remote ccpd run \`ccp login --api-url URL --token KEY\`.`,
        });
      }
      headers["authorization"] = `Bearer ${this.target.token}`;
    }
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: { status: number; text: string };
    try {
      res = await send(new URL(`${this.target.apiUrl}${path}`), method, headers, body === undefined ? undefined : JSON.stringify(body));
    } catch (err) {
      throw new CliError("unreachable", `Cannot reach ccpd at ${this.target.apiUrl} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}).`, {
        hint: START_HINT,
        exitCode: EXIT.unavailable,
      });
    }
    const text = res.text;
    const ok = res.status >= 200 && res.status < 300;
    let parsed: unknown;
    try {
      parsed = text ? JSON.parse(text) : {};
    } catch {
      throw new CliError("bad_response", `ccpd at ${this.target.apiUrl} answered ${res.status} with a body that is not JSON.`, {
        hint: "Check that --api-url / CCP_API_URL points at a ccpd.",
      });
    }
    if (!ok) {
      const e = (parsed as ErrorBody).error ?? {};
      const { code = "http_" + res.status, message = `ccpd answered HTTP ${res.status}.`, hint, ...details } = e;
      throw new CliError(code, message, { hint, details });
    }
    return parsed as T;
  }
}

/**
 * One HTTP request with node:http(s) rather than fetch: restores and backups of
 * big databases answer after minutes, and fetch gives up waiting for response
 * headers after 300 s.
 */
function send(url: URL, method: string, headers: Record<string, string>, body: string | undefined): Promise<{ status: number; text: string }> {
  const request = url.protocol === "https:" ? https.request : http.request;
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => (text += chunk));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end(body);
  });
}
