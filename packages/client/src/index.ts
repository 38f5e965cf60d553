/**
 * @ccp/client: the zero-dependency SDK for ccp's SQL-over-HTTP gateway.
 * See README.md for usage.
 */
export { Client, createClient, type ClientOptions, type ExecuteResult, type Fetch, type Field, type JsonValue, type QueryResult, type Row, type TransactionInput, type TransactionOptions } from "./client.js";
export { CcpError, ConnectionError, POSTGRES_ERROR_FIELDS, PostgresError } from "./errors.js";
export { sql, SqlStatement, type Statement } from "./sql.js";
