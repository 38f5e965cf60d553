import { createInterface } from "node:readline";
import { Writable } from "node:stream";
import { validatePassword } from "@ccp/server/client-side";
import { CliError, EXIT, usageError } from "./errors.js";

/**
 * Ask on stderr and read one line from a terminal without echoing it.
 * readline puts the terminal in raw mode (so the terminal echoes nothing) and
 * writes the prompt; its own echo of the keys goes to a muted stream.
 */
export function promptHidden(question: string, input: NodeJS.ReadStream = process.stdin, output: NodeJS.WriteStream = process.stderr): Promise<string> {
  return new Promise((resolve, reject) => {
    let muted = false;
    const sink = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        if (!muted) output.write(chunk);
        callback();
      },
    });
    const rl = createInterface({ input, output: sink, terminal: true });
    let answered = false;
    rl.question(question, (answer) => {
      answered = true;
      rl.close();
      output.write("\n");
      resolve(answer);
    });
    muted = true;
    rl.on("SIGINT", () => rl.close());
    rl.on("close", () => {
      if (answered) return;
      output.write("\n");
      reject(new CliError("declined", "Cancelled: no password was entered.", { exitCode: EXIT.declined }));
    });
  });
}

/** `--password-stdin`: all of stdin, less one trailing newline (what `echo` and heredocs add). */
export async function readPasswordFromStdin(stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
  return Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
}

/**
 * The password for provision / reset-password: piped in with
 * `--password-stdin`, or typed twice at a hidden prompt on a terminal. Never
 * a plain flag: it would land in shell history and `ps`. Checked against
 * seed 003's rule before anything is sent.
 */
export async function readNewPassword(options: { passwordStdin?: boolean | undefined }, stdin: NodeJS.ReadStream = process.stdin): Promise<string> {
  let password: string;
  if (options.passwordStdin) {
    password = await readPasswordFromStdin(stdin);
  } else if (stdin.isTTY) {
    password = await promptHidden("Password: ", stdin);
    validatePassword(password);
    if ((await promptHidden("Confirm password: ", stdin)) !== password) {
      throw usageError("The passwords do not match; nothing was changed.", "Run the command again and type the same password twice.");
    }
  } else {
    throw usageError("No password: standard input is not a terminal, so ccp cannot prompt for one.", "Pipe it in with --password-stdin, e.g. `printf '%s' \"$DB_PASSWORD\" | ccp db provision NAME -U USER --password-stdin`.");
  }
  return validatePassword(password);
}
