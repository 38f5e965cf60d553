import { execFile } from "node:child_process";
import { promisify } from "node:util";

const execFileAsync = promisify(execFile);

export const isRoot = (): boolean => typeof process.getuid === "function" && process.getuid() === 0;

/** The path of a command, or undefined. Debian puts some (pgbouncer) in /usr/sbin, which a non-root PATH may lack. */
export async function which(cmd: string): Promise<string | undefined> {
  const PATH = `${process.env["PATH"] ?? "/usr/bin:/bin"}:/usr/sbin:/sbin`;
  try {
    const { stdout } = await execFileAsync("sh", ["-c", `command -v ${cmd}`], { env: { PATH } });
    return stdout.trim() || undefined;
  } catch {
    return undefined;
  }
}

/** apt-get install a Debian package (as root), updating the package lists first if the install fails. */
export async function aptInstall(pkg: string): Promise<void> {
  console.log(`installing ${pkg} with apt-get …`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  try {
    await execFileAsync("apt-get", ["install", "-y", "-q", pkg], { env, maxBuffer: 16 * 1024 * 1024 });
  } catch {
    await execFileAsync("apt-get", ["update", "-q"], { env, maxBuffer: 16 * 1024 * 1024 });
    await execFileAsync("apt-get", ["install", "-y", "-q", pkg], { env, maxBuffer: 16 * 1024 * 1024 });
  }
}
