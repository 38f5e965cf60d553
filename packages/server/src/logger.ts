/** What ccpd's parts log through: pino in ccpd, anything with these three methods in tests. */
export interface Logger {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}
