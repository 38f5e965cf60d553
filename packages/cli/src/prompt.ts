import { createInterface } from "node:readline";

/**
 * Ask a yes/no question on stderr and read one line from stdin. Anything but
 * y/yes (including end of input) is a no, so a script without -y never
 * destroys anything by accident.
 */
export function confirm(question: string): Promise<boolean> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: process.stdin, output: process.stderr, terminal: Boolean(process.stdin.isTTY) });
    let answered = false;
    rl.question(`${question} (y/N) `, (answer) => {
      answered = true;
      rl.close();
      resolve(/^y(es)?$/i.test(answer.trim()));
    });
    rl.on("close", () => {
      if (!answered) {
        process.stderr.write("\n");
        resolve(false);
      }
    });
  });
}
