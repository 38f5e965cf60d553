import assert from "node:assert/strict";
import { setTimeout as sleep } from "node:timers/promises";
import { inspect } from "node:util";

/**
 * Poll `check` until it gives a value (anything but `undefined` or `false`) and
 * return that value. After `deadlineMs` the test fails, naming `what` and the
 * last value seen. The deadline is a bound so that a broken build fails instead
 * of hanging, never a timing assertion: keep it generous. An error thrown by
 * `check` fails at once.
 */
export async function poll<T>(
  what: string,
  check: () => T | undefined | false | Promise<T | undefined | false>,
  options: { deadlineMs?: number; everyMs?: number } = {},
): Promise<T> {
  const { deadlineMs = 60_000, everyMs = 50 } = options;
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) assert.fail(`gave up after ${deadlineMs} ms waiting for: ${what} (last: ${inspect(value)})`);
    await sleep(everyMs);
  }
}
