/**
 * Benchmarks: `npm run bench [-- --only create[,…]] [--n 20] [--duration 10] [--size-gb 1]`.
 * lifecycle: --n is also the number of databases of the density figure.
 * Each part is one file under bench/parts/; add it to PARTS to run it.
 */
import { parseArgs } from "node:util";
import type { Part } from "./lib/part.ts";
import { backupPart } from "./parts/backup.ts";
import { branchPart } from "./parts/branch.ts";
import { cliPart } from "./parts/cli.ts";
import { createPart } from "./parts/create.ts";
import { gatewayPart } from "./parts/gateway.ts";
import { isolationPart } from "./parts/isolation.ts";
import { lifecyclePart } from "./parts/lifecycle.ts";
import { observabilityPart } from "./parts/observability.ts";
import { wirePart } from "./parts/wire.ts";

const PARTS: Readonly<Record<string, Part>> = {
  create: createPart,
  gateway: gatewayPart,
  observability: observabilityPart,
  wire: wirePart,
  backup: backupPart,
  branch: branchPart,
  cli: cliPart,
  lifecycle: lifecyclePart,
  isolation: isolationPart,
};

const { values } = parseArgs({
  options: {
    only: { type: "string" },
    n: { type: "string", default: "20" },
    duration: { type: "string", default: "10" },
    "size-gb": { type: "string", default: "1" },
  },
});

const n = Number(values.n);
if (!Number.isInteger(n) || n < 1) throw new Error(`--n must be a positive integer, not ${values.n}`);
const duration = Number(values.duration);
if (!Number.isInteger(duration) || duration < 1) throw new Error(`--duration must be a positive integer (seconds), not ${values.duration}`);
const sizeGb = Number(values["size-gb"]);
if (!(sizeGb > 0)) throw new Error(`--size-gb must be a positive number (GiB), not ${values["size-gb"]}`);
const names = values.only ? values.only.split(",").map((s) => s.trim()).filter(Boolean) : Object.keys(PARTS);
const unknown = names.filter((name) => !(name in PARTS));
if (unknown.length > 0) throw new Error(`unknown part(s): ${unknown.join(", ")}; known: ${Object.keys(PARTS).join(", ")}`);

for (const [i, name] of names.entries()) {
  if (i > 0) console.log("");
  console.log(`== ${name} ==`);
  await (PARTS[name] as Part)({ n, duration, sizeGb });
}
