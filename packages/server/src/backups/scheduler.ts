import type { Logger } from "../logger.js";
import type { Catalog } from "../catalog/catalog.js";
import type { BackupService } from "./service.js";

export interface ScheduleSettings {
  /** Daily base backup time, "HH:MM" in UTC. */
  readonly dailyAt: string;
  readonly retentionDays: number;
}


/** Today's scheduled instant (UTC) for a clock reading. */
export function scheduledInstant(now: Date, dailyAt: string): Date {
  const m = /^([01]\d|2[0-3]):([0-5]\d)$/.exec(dailyAt);
  if (!m) throw new Error(`Invalid backup time "${dailyAt}": use HH:MM (UTC).`);
  return new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate(), Number(m[1]), Number(m[2])));
}

/**
 * One scheduled base backup a day per ready database (a suspended one is woken
 * only when it was written since its last backup, and sleeps again when idle), then retention. `tick()`
 * is the whole job, so tests drive it with an injected clock; `start()` runs it
 * every minute.
 */
export class BackupScheduler {
  readonly #catalog: Catalog;
  readonly #backups: BackupService;
  readonly #settings: ScheduleSettings;
  readonly #now: () => Date;
  readonly #log: Logger;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;

  constructor(o: { catalog: Catalog; backups: BackupService; settings: ScheduleSettings; now?: () => Date; log: Logger }) {
    this.#catalog = o.catalog;
    this.#backups = o.backups;
    this.#settings = Object.freeze({ ...o.settings });
    this.#now = o.now ?? (() => new Date());
    this.#log = o.log;
    scheduledInstant(new Date(), this.#settings.dailyAt); // validate early
  }

  async tick(): Promise<{ taken: string[]; pruned: string[] }> {
    const now = this.#now();
    const due = scheduledInstant(now, this.#settings.dailyAt);
    const taken: string[] = [];
    if (now >= due) {
      // A suspended database with no writes since its last backup is already covered: it is not woken.
      for (const id of await this.#catalog.backups.dueForScheduled(due)) {
        try {
          taken.push((await this.#backups.create(id, "scheduled")).id);
        } catch (err) {
          this.#log.error(`scheduled backup of ${id} failed: ${(err as Error).message}`);
        }
      }
    }
    const { backups: pruned } = await this.#backups.prune(this.#settings.retentionDays);
    return { taken, pruned };
  }

  start(intervalMs = 60_000): void {
    const run = () => {
      this.#running ??= this.tick()
        .then(() => undefined)
        .catch((err: Error) => this.#log.error(`backup scheduler: ${err.message}`))
        .finally(() => (this.#running = undefined));
    };
    this.#timer = setInterval(run, intervalMs);
    this.#timer.unref();
    run();
  }

  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    await this.#running;
  }
}
