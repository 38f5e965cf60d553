/**
 * A bench never dies on one noisy row: run `fn` up to `attempts` times (a
 * loaded machine can make a short run process nothing, e.g. pgbench's "number
 * of transactions actually processed: 0"), and say on stderr what was retried.
 * Resolves to undefined when every attempt failed, so the caller reports that
 * row as failed instead of aborting the whole run.
 */
export async function retrying<T>(what: string, fn: () => Promise<T>, attempts = 3): Promise<T | undefined> {
  for (let i = 1; i <= attempts; i++) {
    try {
      return await fn();
    } catch (err) {
      const first = ((err as Error).message ?? String(err)).split("\n").slice(0, 3).join(" | ");
      console.error(`${what}: attempt ${i} of ${attempts} failed: ${first}`);
      if (i < attempts) await new Promise((r) => setTimeout(r, 1_000 * i));
    }
  }
  return undefined;
}
