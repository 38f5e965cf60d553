/** Where a long operation's time went (a backup, a restore, a branch), for its log line. */
export class Phases {
  #last = performance.now();
  readonly #first = this.#last;
  readonly #done: string[] = [];

  mark(what: string): void {
    const now = performance.now();
    this.#done.push(`${what} ${((now - this.#last) / 1000).toFixed(2)} s`);
    this.#last = now;
  }

  summary(): string {
    return `${((this.#last - this.#first) / 1000).toFixed(2)} s (${this.#done.join(", ")})`;
  }
}
