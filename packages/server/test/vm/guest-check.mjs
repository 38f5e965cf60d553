// Runs INSIDE the cgroup-v2-vm.sh guest (a real cgroup v2 kernel, cgroup2 on
// /sys/fs/cgroup): the real Cgroups class from dist/ against the kernel's own
// files, and real processes in the groups so the kernel enforces each limit.
// One line per check: "ok" or "FAIL", with the kernel's figures. Exit 1 on any FAIL.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { setTimeout } from "node:timers";
import { fileURLToPath } from "node:url";

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../../..");
const { Cgroups, deviceOf } = await import(path.join(repo, "packages/server/dist/runtime/process/cgroups.js"));

const MiB = 1024 * 1024;
const CG = "/sys/fs/cgroup";
const dataDir = process.env.CCP_VM_DATA ?? "/tmp";
const scope = "0123456789ab";
let failures = 0;
/** What the guest is doing now: a watchdog names it if a step hangs (the host only sees the guest stop answering). */
let step = "detect";
const WATCHDOG_MS = Number(process.env.CCP_VM_GUEST_TIMEOUT_MS ?? 20 * 60_000);
setTimeout(() => {
  console.log(`FAIL watchdog: still at "${step}" after ${WATCHDOG_MS / 1000} s`);
  process.exit(1);
}, WATCHDOG_MS).unref();

function check(name, ok, figures) {
  if (!ok) failures++;
  console.log(`${ok ? "ok  " : "FAIL"} ${name}: ${figures}`);
}
const read = (dir, file) => {
  try {
    return readFileSync(path.join(dir, file), "utf8").trim();
  } catch (err) {
    return `(unreadable: ${err.code ?? err})`;
  }
};
const field = (text, name) => Number(new RegExp(`^${name} (\\d+)`, "m").exec(text)?.[1]);
const oneLine = (text) => text.replace(/\n/g, "; ");

/** Start a process that joins the group itself (its own pid into cgroup.procs, as native/jail.c does) and only then runs `script`. */
function joined(dir, script) {
  const child = spawn("/bin/sh", ["-c", `echo $$ > ${dir}/cgroup.procs || exit 125; ${script}`], { stdio: ["ignore", "pipe", "pipe"] });
  let out = "";
  child.stdout.on("data", (d) => (out += d));
  child.stderr.on("data", (d) => (out += d));
  const done = new Promise((resolve) => child.on("exit", (code, signal) => resolve({ code, signal, out })));
  return { child, done };
}
async function until(what, test, ms = 120_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (test()) return true;
    await sleep(100);
  }
  console.log(`     (gave up waiting for ${what})`);
  return false;
}

console.log(`guest: kernel ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}, node ${process.version}, data dir ${dataDir} on disk ${deviceOf(dataDir)}`);

// 1. detect: v2, every controller handed down level by level.
const cg = Cgroups.detect({ scope });
if (typeof cg === "string") {
  check("Cgroups.detect() finds cgroup v2", false, cg);
  process.exit(1);
}
check("Cgroups.detect() finds cgroup v2", cg.version === 2, `version ${cg.version}; root controllers: ${read(CG, "cgroup.controllers")}`);
for (const c of ["memory", "cpu", "pids", "io"]) {
  const levels = [CG, path.join(CG, "ccp"), path.join(CG, "ccp", scope)].map((d) => read(d, "cgroup.subtree_control").split(" "));
  check(`${c} enabled level by level`, cg.enforces(c) && levels.every((l) => l.includes(c)), `enforces=${cg.enforces(c)}; subtree_control root/ccp/scope: ${levels.map((l) => l.join(",")).join(" | ")}`);
}

step = "create + apply";
// 2. create + apply: the kernel takes every file; read back what it holds.
const db = "db-000000000001";
const [dir] = cg.create(db);
check("create() makes the group", dir === path.join(CG, "ccp", scope, db) && existsSync(path.join(dir, "cgroup.procs")), `${dir}: ${read(dir, "cgroup.controllers")}`);
const limits = { memoryBytes: 256 * MiB, cpu: 0.5, pids: 40, ioBytesPerSec: 10 * MiB, connections: 5 };
const applied = cg.apply(db, limits, dataDir);
check("apply() writes every limit the kernel accepts", ["memoryBytes", "cpu", "pids", "ioBytesPerSec"].every((k) => applied.includes(k)), `applied: ${applied.join(", ")}`);
const page = 4096;
const high = Number(read(dir, "memory.high"));
check("memory.max", read(dir, "memory.max") === String(256 * MiB), read(dir, "memory.max"));
check("memory.high (90%, the kernel rounds to a page)", Math.abs(high - Math.floor(256 * MiB * 0.9)) < page, String(high));
if (existsSync(path.join(dir, "memory.swap.max"))) check("memory.swap.max", read(dir, "memory.swap.max") === "0", read(dir, "memory.swap.max"));
check("cpu.max", read(dir, "cpu.max") === "50000 100000", read(dir, "cpu.max"));
check("pids.max", read(dir, "pids.max") === "40", read(dir, "pids.max"));
{
  // What the kernel says to a partition's number (the data dir's own device): whole disks only.
  const st = readFileSync("/proc/self/mountinfo", "utf8").split("\n").find((l) => l.split(" ")[4] === dataDir)?.split(" ")[2] ?? "?";
  let said = "accepted";
  try {
    writeFileSync(path.join(dir, "io.max"), `${st} wbps=1048576`);
  } catch (err) {
    said = err.code;
  }
  console.log(`info the kernel's answer to io.max for the partition ${st} itself: ${said}`);
}
const io = read(dir, "io.max");
check("io.max (the data dir's disk)", /rbps=10485760 wbps=10485760/.test(io), `${io || "(empty)"}; data dir on ${deviceOf(dataDir)}`);
const unlimited = cg.apply(db, {}, dataDir);
check("apply({}) lifts every limit", read(dir, "memory.max") === "max" && read(dir, "cpu.max") === "max 100000" && read(dir, "pids.max") === "max" && !/bps=\d/.test(read(dir, "io.max")),
  `memory.max ${read(dir, "memory.max")}, cpu.max ${read(dir, "cpu.max")}, pids.max ${read(dir, "pids.max")}, io.max "${read(dir, "io.max")}", applied [${unlimited.join(",")}]`);
await cg.remove(db);

step = "pids.max";
// 3. The kernel enforces them on processes that joined the group.
{
  const name = "db-000000000002";
  const [d] = cg.create(name);
  cg.apply(name, { pids: 8 }, dataDir);
  const p = joined(d, "for i in 1 2 3 4 5 6 7 8 9 10 11 12; do sleep 60 & done; echo spawned; wait");
  await until("the shell to try its 12 forks", () => Number.isFinite(field(read(d, "pids.events"), "max")) && field(read(d, "pids.events"), "max") > 0);
  const current = Number(read(d, "pids.current"));
  const events = read(d, "pids.events");
  const usage = cg.usage(name);
  check("pids.max 8 refuses the forks beyond it", field(events, "max") >= 1 && current <= 8, `pids.current ${current}, pids.events "${oneLine(events)}"`);
  check("usage() reads pids, memory, cpu", usage.pids === current && usage.memoryBytes > 0 && usage.cpuSeconds >= 0, JSON.stringify(usage));
  const procs = read(d, "cgroup.procs").split("\n").filter(Boolean);
  const where = procs.map((pid) => read(`/proc/${pid}`, "cgroup"));
  check("the processes forked after the join are in the group (/proc/PID/cgroup)", procs.length > 0 && where.every((w) => w === `0::/ccp/${scope}/${name}`), `${procs.length} in cgroup.procs, /proc/PID/cgroup: ${[...new Set(where)].join(", ")}`);
  writeFileSync(path.join(d, "cgroup.kill"), "1");
  const r = await p.done;
  console.log(`info the shell: exit ${r.code} signal ${r.signal}; said: ${oneLine(r.out.trim()).slice(0, 160) || "nothing"}`);
  await cg.remove(name);
  check("remove() once its processes are gone", !existsSync(d), existsSync(d) ? `${d} is still there (cgroup.procs: ${read(d, "cgroup.procs")})` : `${d} gone`);
}
{
  const name = "db-000000000003";
  const [d] = cg.create(name);
  cg.apply(name, { memoryBytes: 64 * MiB }, dataDir);
  step = "memory.max";
  // 256 MiB touched page by page: only the OOM killer stops it.
  const p = joined(d, `exec ${process.execPath} -e "const a = []; for (let i = 0; i < 256; i++) a.push(Buffer.alloc(${MiB}, 1)); console.log('survived', process.memoryUsage().rss)"`);
  const r = await p.done;
  const events = read(d, "memory.events");
  check("memory.max 64MiB: a 256MiB hog is OOM-killed", r.signal === "SIGKILL" && field(events, "oom_kill") >= 1, `exit ${r.code} signal ${r.signal}; memory.events "${oneLine(events)}"; memory.peak ${read(d, "memory.peak")}`);
  await cg.remove(name);
}
{
  const name = "db-000000000004";
  const [d] = cg.create(name);
  step = "cpu.max";
  cg.apply(name, { cpu: 0.1 }, dataDir);
  const p = joined(d, "end=$(($(date +%s) + 3)); while [ $(date +%s) -lt $end ]; do :; done");
  const r = await p.done;
  const stat = read(d, "cpu.stat");
  const usage = cg.usage(name);
  check("cpu.max 0.1 throttles a busy loop", r.code === 0 && field(stat, "nr_throttled") > 0 && field(stat, "throttled_usec") > 0, `cpu.stat "${oneLine(stat)}"`);
  check("usage() counts the group's CPU time", usage.cpuSeconds > 0 && Math.abs(usage.cpuSeconds - field(stat, "usage_usec") / 1e6) < 1e-6, `cpuSeconds ${usage.cpuSeconds}`);
  await cg.remove(name);
}

step = "removeScope";
// 4. Clean-up.
cg.removeScope();
const left = path.join(CG, "ccp", scope);
check("removeScope() removes the scope group", !existsSync(left), existsSync(left) ? `still there: ${spawnSync("ls", [left], { encoding: "utf8" }).stdout.trim()}` : `${left} gone`);

// 5. A container's view: its processes in a group of their own that is the root of their own cgroup
// namespace, with cgroup2 mounted afresh there. cgroup v2 hands no controller down from that group while
// processes are in it; detect() must say so and what to do, and doing it (move them into init/) must work.
step = "container-like cgroup namespace";
{
  const box = path.join(CG, "box");
  mkdirSync(box);
  const inner = "/tmp/ccp-vm-detect.mjs";
  writeFileSync(inner, `const { Cgroups } = await import(${JSON.stringify(path.join(repo, "packages/server/dist/runtime/process/cgroups.js"))});
const cg = Cgroups.detect({ scope: "ba9876543210" });
if (typeof cg === "string") console.log(cg);
else { console.log(cg.features().filter((f) => f.enforced).map((f) => f.name).join(" ")); cg.removeScope(); }
`);
  const inNamespace = (before) =>
    spawnSync("/bin/sh", ["-c", `/bin/echo $$ > ${box}/cgroup.procs && exec unshare -m -C --propagation private /bin/sh -c 'umount /sys/fs/cgroup && mount -t cgroup2 cgroup2 /sys/fs/cgroup && ${before} exec ${process.execPath} ${inner}'`], { encoding: "utf8" });
  const busy = inNamespace("");
  const said = (busy.stdout + busy.stderr).trim();
  check("in a container's cgroup namespace with its processes at the root: detect() says why (EBUSY) and what to do", /EBUSY/.test(said) && /move its processes into a child group/.test(said), said);
  const root = `the namespace root: cgroup.type ${read(box, "cgroup.type")}, cgroup.subtree_control "${read(box, "cgroup.subtree_control")}"`;
  check("... and leaves the namespace root as it found it (no threaded controller left on: that would make it a thread root)", read(box, "cgroup.type") === "domain" && read(box, "cgroup.subtree_control") === "", root);
  // coreutils' echo names the kernel's error (dash's says "I/O error" whatever it was).
  const moved = inNamespace("mkdir -p /sys/fs/cgroup/init && /bin/echo $$ > /sys/fs/cgroup/init/cgroup.procs &&");
  check("... and once they are moved into init/ as it says, every controller is enforced", moved.stdout.trim() === "memory cpu pids io", (moved.stdout + moved.stderr).trim());
  for (const d of [path.join(box, "ccp", "ba9876543210"), path.join(box, "ccp"), path.join(box, "init"), box]) {
    try {
      rmdirSync(d);
    } catch {
      // absent
    }
  }
}

// 6. --ccpd: the whole ccpd, a database's postmaster in the sandbox (native/jail.c joins the group) under its limits.
if (process.env.CCP_VM_CCPD === "1") {
  const { startServer, resolveServerConfig } = await import(path.join(repo, "packages/server/dist/index.js"));
  const root = path.join(dataDir, "ccpd");
  const env = { ...process.env, XDG_CONFIG_HOME: path.join(root, "config"), CCP_LOG_LEVEL: "warn" };
  const config = resolveServerConfig({ dataDir: path.join(root, "data"), port: 0, wirePort: 0, warmPool: 0, backupAt: "off", suspendAfter: "never" }, env);
  step = "ccpd start";
  let t = Date.now();
  const server = await startServer(config);
  console.log(`info ccpd started in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const report = Object.fromEntries(server.driver.isolation().map((f) => [f.name, f]));
  for (const c of ["memory", "cpu", "pids", "io"]) check(`ccpd reports ${c} enforced`, report[c]?.enforced === true && /cgroup v2/.test(report[c].detail), report[c]?.detail ?? "(absent)");
  console.log(`info ccpd's isolation: ${Object.values(report).map((f) => `${f.name}=${f.enforced ? "on" : "off"}`).join(" ")}`);
  step = "create a database";
  t = Date.now();
  const id = (await server.databases.create("vm-db")).database.id;
  console.log(`info database ${id} created in ${((Date.now() - t) / 1000).toFixed(1)} s`);
  const pid = server.driver.pid(id);
  const dirs = server.driver.cgroupDirs(id) ?? {};
  const u = dirs["unified"] ?? "(none)";
  const own = pid === undefined ? "(no pid)" : read(`/proc/${pid}`, "cgroup");
  check("the postmaster is in its database's v2 group", pid !== undefined && own === `0::${u.slice(CG.length)}` && read(u, "cgroup.procs").split("\n").includes(String(pid)), `postmaster ${pid}: ${own}; group ${u}`);
  const uid = pid === undefined ? NaN : Number(/^Uid:\s+(\d+)/m.exec(read(`/proc/${pid}`, "status"))?.[1]);
  check("the postmaster runs sandboxed as its own uid, in its own pid namespace", uid > 0 && pid !== undefined && read(`/proc/${pid}`, "status").includes("NSpid:"), `uid ${uid}; ${/^NSpid:.*$/m.exec(read(`/proc/${pid}`, "status"))?.[0]}`);
  step = "setLimits";
  const applied = await server.driver.setLimits(id, { memoryBytes: 256 * MiB, cpu: 0.5, pids: 64, ioBytesPerSec: 10 * MiB, connections: 20 });
  check("setLimits() applies memory, cpu, pids, io live", ["memoryBytes", "cpu", "pids", "ioBytesPerSec"].every((k) => applied.live.includes(k)), `live: ${applied.live.join(", ")}; next start: ${applied.nextStart.join(", ")}`);
  check("the database's group holds the limits", read(u, "memory.max") === String(256 * MiB) && read(u, "cpu.max") === "50000 100000" && read(u, "pids.max") === "64" && /^\d+:\d+ rbps=10485760 wbps=10485760/.test(read(u, "io.max")),
    `memory.max ${read(u, "memory.max")}, memory.high ${read(u, "memory.high")}, cpu.max ${read(u, "cpu.max")}, pids.max ${read(u, "pids.max")}, io.max ${read(u, "io.max")}`);
  const usage = await server.driver.usage(id);
  check("usage() of the database from its group", usage.memoryBytes > 0 && usage.pids > 3 && usage.cpuSeconds > 0, `${JSON.stringify({ memoryBytes: usage.memoryBytes, cpuSeconds: usage.cpuSeconds, pids: usage.pids })}; pids.current ${read(u, "pids.current")}`);
  step = "a memory hog in the database";
  {
    // A backend asks for 1 GiB under a 256 MiB group: the kernel's OOM killer takes it in this group only, the
    // postmaster (oom_score_adj -1000, from the launcher) survives and the database answers again by itself.
    const { default: pg } = await import(path.join(repo, "node_modules/pg/lib/index.js"));
    const { adminClientConfig } = await import(path.join(repo, "packages/server/dist/runtime/backend-socket.js"));
    const sql = async (text) => {
      const c = new pg.Client({ ...adminClientConfig(server.instances.endpoint(id)), database: "postgres" });
      c.on("error", () => undefined);
      await c.connect();
      try {
        return (await c.query(text)).rows;
      } finally {
        await c.end().catch(() => undefined);
      }
    };
    await server.driver.setLimits(id, { memoryBytes: 256 * MiB });
    let hog = "answered";
    try {
      await sql("SELECT array_length(array_agg(repeat(md5(g::text), 320000)), 1) FROM generate_series(1, 100) g");
    } catch (err) {
      hog = err.message;
    }
    let again = false;
    for (const end = Date.now() + 180_000; !again && Date.now() < end; await sleep(500)) again = await sql("SELECT 1 AS x").then((r) => r[0]?.x === 1, () => false);
    const events = read(u, "memory.events");
    check("a 1 GiB backend under memory.max 256MiB is OOM-killed; the postmaster survives and the database answers again", hog !== "answered" && field(events, "oom_kill") >= 1 && server.driver.pid(id) === pid && again,
      `the query: ${hog}; memory.events "${oneLine(events)}"; postmaster ${server.driver.pid(id)} (was ${pid}); answers again: ${again}`);
  }
  step = "ccpd shutdown";
  await server.close();
  const scopeDir = path.dirname(u);
  check("ccpd's shutdown removes the database's group and its scope", !existsSync(u) && !existsSync(scopeDir), `${u} ${existsSync(u) ? "left" : "gone"}, ${scopeDir} ${existsSync(scopeDir) ? "left" : "gone"}`);
}

console.log(`${failures === 0 ? "all checks passed" : `${failures} check(s) FAILED`}`);
process.exit(failures === 0 ? 0 : 1);
