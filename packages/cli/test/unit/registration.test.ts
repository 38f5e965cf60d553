import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Command } from "commander";
import { registerEntries, type CliRun, type Entry } from "../../src/command.js";

/** The CLI's lazy registration (src/command.ts): a run loads the verb it runs, help loads the group. */
describe("registerEntries", () => {
  const run: CliRun = { code: 0 };
  function group(): { loaded: string[]; seen: Map<string, readonly string[]>; entries: Entry[] } {
    const loaded: string[] = [];
    const seen = new Map<string, readonly string[]>();
    const entry = (name: string, ...aliases: string[]): Entry => ({
      names: [name, ...aliases],
      load: async () => {
        loaded.push(name);
        return {
          register: (parent: Command, _run: CliRun, args: readonly string[]) => {
            seen.set(name, args);
            return parent.command(name).aliases(aliases);
          },
        };
      },
    });
    return { loaded, seen, entries: [entry("create"), entry("list", "ls"), entry("backup"), entry("destroy", "rm")] };
  }

  it("loads only the verb the command line names, by name or by alias", async () => {
    for (const [args, verb] of [[["list", "--json"], "list"], [["ls"], "list"], [["rm", "x", "-y"], "destroy"]] as const) {
      const g = group();
      const db = new Command("db");
      await registerEntries(db, run, args, g.entries);
      assert.deepEqual(g.loaded, [verb]);
      assert.deepEqual(db.commands.map((c) => c.name()), [verb]);
    }
  });

  it("hands a group the words after its name, so it can do the same one level down", async () => {
    const g = group();
    await registerEntries(new Command("db"), run, ["--verbose", "backup", "list", "--db-id", "x"], g.entries);
    assert.deepEqual(g.seen.get("backup"), ["list", "--db-id", "x"]);
  });

  it("loads every verb in the listed order for help, no verb, or a name that matches none (commander then suggests one)", async () => {
    for (const args of [[], ["--help"], ["lst"]]) {
      const g = group();
      const db = new Command("db");
      await registerEntries(db, run, args, g.entries);
      assert.deepEqual(g.loaded, ["create", "list", "backup", "destroy"]);
      assert.deepEqual(db.commands.map((c) => c.name()), ["create", "list", "backup", "destroy"]);
      assert.deepEqual([...g.seen.values()], [[], [], [], []], "a group registered for help registers all of its own verbs too");
    }
  });
});
