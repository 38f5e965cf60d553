export { resolveServerConfig, defaultDataDir, type ServerConfig, type ServerOptions } from "./config.js";
export { startServer, type RunningServer } from "./server.js";
export { CcpError, isCcpError, type ErrorCode } from "./errors.js";
export { DATABASE_NAME_PATTERN, validateDatabaseName } from "./names.js";
export { readUserConfig, writeUserConfig, writeSecretFile, userConfigPath, type UserConfig } from "./user-config.js";
export { resolvePgBinaries, type PgBinaries } from "./runtime/process/binaries.js";
export type { RuntimeDriver, InstanceEndpoint } from "./runtime/driver.js";
export type { DatabaseView } from "./databases/service.js";
export { VERSION } from "./version.js";
