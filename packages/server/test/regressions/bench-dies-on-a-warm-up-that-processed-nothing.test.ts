import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { retrying } from "../../../../bench/lib/retry.ts";

/**
 * Issue 13, item 7: on a loaded machine `npm run bench -- --only wire` aborted
 * the whole run because a 2 s warm-up at 64 clients processed nothing
 * ("cannot read pgbench's output … actually processed: 0"). The bench now runs
 * each pgbench through `retrying`: retried, and reported instead of thrown.
 */
describe("regression: the bench dies on a warm-up that processed nothing", () => {
  const processedNothing = () => new Error("cannot read pgbench's output:\nnumber of transactions actually processed: 0");

  it("retries a run that processed nothing and returns the next attempt's result", async () => {
    let calls = 0;
    const r = await retrying("warm-up ccp c=64", async () => {
      calls++;
      if (calls === 1) throw processedNothing();
      return { tps: 1234 };
    });
    assert.deepEqual(r, { tps: 1234 });
    assert.equal(calls, 2);
  });

  it("reports a row whose every attempt failed (undefined) instead of throwing", async () => {
    let calls = 0;
    const r = await retrying("ccp c=64 round 1", async () => {
      calls++;
      throw processedNothing();
    }, 2);
    assert.equal(r, undefined);
    assert.equal(calls, 2);
  });
});
