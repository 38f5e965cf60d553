/** What every bench part receives from bench/run.ts. */
export interface PartOptions {
  /** Measured iterations per figure (after warm-up). */
  readonly n: number;
}

/** A part runs its measurements and prints its own figures to stdout. */
export type Part = (options: PartOptions) => Promise<void>;
