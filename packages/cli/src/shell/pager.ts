import { spawn } from "node:child_process";

/** `$PAGER`, else `less -FRSX` (quit if one screen, keep colours, chop long lines, leave the screen as is). */
export function pagerCommand(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const pager = env["PAGER"];
  if (pager === undefined) return "less -FRSX";
  return pager.trim() === "" ? undefined : pager; // PAGER= turns paging off, as in psql
}

/**
 * Show `text` through the pager. Resolves to false when the pager could not
 * run (not installed), so that the caller prints the text itself.
 */
export function page(command: string, text: string): Promise<boolean> {
  return new Promise((resolve) => {
    // The pager reads keys from the terminal; Ctrl+C there must not end the shell.
    const ignore = () => {};
    process.on("SIGINT", ignore);
    // Keys belong to the pager until it quits: stop reading them here, and give it a cooked terminal.
    const stdin = process.stdin;
    const raw = stdin.isTTY ? stdin.isRaw : false;
    stdin.pause();
    if (stdin.isTTY) stdin.setRawMode(false);
    const done = (ok: boolean) => {
      process.off("SIGINT", ignore);
      if (stdin.isTTY) stdin.setRawMode(raw);
      stdin.resume();
      resolve(ok);
    };
    const child = spawn(command, { shell: true, stdio: ["pipe", "inherit", "inherit"] });
    child.on("error", () => done(false));
    child.stdin.on("error", () => {}); // the user quit the pager before reading everything
    child.on("close", (code) => done(code !== 127 && code !== 126));
    child.stdin.end(text);
  });
}
