/**
 * What the CLI needs of the server package without starting a server: input
 * rules, the error type, the user config and the version. Nothing here loads
 * Fastify, pg or pino, so `ccp --version` and `ccp db list` start as fast as
 * Node does; `ccp server start` imports the full package (index.ts) when it runs.
 */
export { CcpError, isCcpError, type ErrorCode } from "./errors.js";
export { DATABASE_NAME_PATTERN, validateDatabaseName } from "./names.js";
export { MIN_PASSWORD_LENGTH, PROVISION_NAME_PATTERN, validateOwnerRole, validatePassword, validateProvisionName } from "./databases/provision-rules.js";
export { readUserConfig, writeUserConfig, writeSecretFile, userConfigPath, type UserConfig } from "./user-config.js";
export type { DatabaseStatusView, DatabaseView, LimitsChange } from "./databases/service.js";
export { VERSION } from "./version.js";
export { INSIGHT_SORTS, LOG_LEVELS, parseLevel, parseSince, type InsightSort, type LogLevel } from "./observability/params.js";
export type { LogEntry } from "./observability/logs.js";
export type { StatementInsight } from "./observability/insights.js";
export { parseSuspendAfter } from "./runtime/suspend-after.js";
export { formatSize, LIMIT_NAMES, parseLimits, parseSize, SIZE_HINT, type LimitName, type LimitView } from "./databases/limits.js";
