// Builds the wire endpoint's native forwarder (native/forwarder.c) and the
// sandbox launcher (native/jail.c, an executable) with node-gyp, which npm puts on
// the PATH of its scripts. Without a C toolchain the wire endpoint still works,
// forwarding in JavaScript (slower), and databases run without the sandbox (ccpd
// says so at start and in its isolation report), so a failed build is a warning,
// except when CCP_REQUIRE_NATIVE=1. (The wire and isolation tests fail when they are missing on Linux.)
import { spawnSync } from "node:child_process";
import { fileURLToPath, URL } from "node:url";

const dir = fileURLToPath(new URL("../native", import.meta.url));
if (process.platform !== "linux") {
  console.warn("ccp: the native wire forwarder and sandbox launcher are Linux-only; the wire endpoint will forward in JavaScript, databases run without a sandbox");
  process.exit(0);
}
const result = spawnSync("node-gyp", ["rebuild", "--loglevel=warn", "--directory", dir], { stdio: ["ignore", "ignore", "inherit"], shell: false });
if (result.status === 0) process.exit(0);
const why = result.error ? result.error.message : `node-gyp exited with ${result.status}`;
if (process.env.CCP_REQUIRE_NATIVE === "1") {
  console.error(`ccp: building the native wire forwarder and sandbox launcher failed (${why})`);
  process.exit(1);
}
console.warn(`ccp: the native wire forwarder and sandbox launcher were not built (${why}); the wire endpoint will forward in JavaScript and databases run without a sandbox.`);
console.warn("ccp: install a C toolchain (python3, make, gcc) and run `npm run build` to build them.");
