/** What every bench part receives from bench/run.ts. */
export interface PartOptions {
  /** Measured iterations per figure (after warm-up). */
  readonly n: number;
  /** Seconds per timed load run (parts that run load for a fixed time). */
  readonly duration: number;
  /** Size of the database the backup part fills, in GiB (`--size-gb`, default 1). */
  readonly sizeGb?: number;
}

/** A part runs its measurements and prints its own figures to stdout. */
export type Part = (options: PartOptions) => Promise<void>;
