import { parse as parseArray } from "postgres-array";

/**
 * Postgres text values → JSON values that lose nothing (README, "Types over HTTP").
 * The gateway receives every column as text (DateStyle=ISO, TimeZone=UTC,
 * bytea_output=hex are set on its connections) and maps it here:
 *
 *   int2, int4, oid, float4, float8  → number ("NaN", "Infinity", "-Infinity" stay strings)
 *   int8, numeric, money             → string (no precision lost)
 *   bool                             → boolean
 *   json, jsonb                      → the JSON value
 *   bytea                            → "\x…" hex string
 *   timestamptz                      → ISO 8601 in UTC, microseconds kept: "2024-05-01T12:00:00.123456Z"
 *   timestamp                        → ISO 8601 without zone: "2024-05-01T12:00:00.123456"
 *   date, time, timetz, interval, uuid, text, … → the Postgres text form
 *   arrays of any of these           → JSON arrays (nested for multi-dimensional), elements mapped alike
 */
export type JsonValue = null | boolean | number | string | JsonValue[] | { [k: string]: JsonValue };
type Mapper = (text: string) => JsonValue;

const identity: Mapper = (t) => t;
const toInt: Mapper = (t) => Number(t);
const toFloat: Mapper = (t) => {
  const n = Number(t);
  return Number.isFinite(n) ? n : t;
};
const toBool: Mapper = (t) => t === "t" || t === "true";
const toJson: Mapper = (t) => JSON.parse(t) as JsonValue;
const isoTimestamp = (t: string): string => (/^\d{4,}-\d\d-\d\d \d/.test(t) ? t.replace(" ", "T") : t);
const isoTimestamptz: Mapper = (t) => {
  if (!/^\d{4,}-\d\d-\d\d \d/.test(t)) return t; // infinity, BC dates
  return t.replace(" ", "T").replace(/\+00(?::00)?$/, "Z");
};

const SCALARS: Record<number, Mapper> = {
  16: toBool,
  20: identity, // int8
  21: toInt,
  23: toInt,
  26: toInt,
  700: toFloat,
  701: toFloat,
  1700: identity, // numeric
  114: toJson,
  3802: toJson,
  17: identity, // bytea, already \x… hex
  1114: isoTimestamp,
  1184: isoTimestamptz,
};

/** Array type OID → element type OID, for the built-in types. */
const ARRAY_ELEMENT: Record<number, number> = {
  1000: 16, 1001: 17, 1002: 18, 1005: 21, 1007: 23, 1016: 20, 1028: 26, 1021: 700, 1022: 701, 1231: 1700,
  199: 114, 3807: 3802, 1115: 1114, 1185: 1184, 1182: 1082, 1183: 1083, 1270: 1266, 1187: 1186,
  1009: 25, 1015: 1043, 1014: 1042, 1003: 19, 2951: 2950, 1041: 869, 651: 650, 1040: 829, 791: 790,
};

const cache = new Map<number, Mapper>();

export function mapperFor(oid: number): Mapper {
  let m = cache.get(oid);
  if (m) return m;
  const scalar = SCALARS[oid];
  const element = ARRAY_ELEMENT[oid];
  if (scalar) m = scalar;
  else if (element !== undefined) {
    const inner = SCALARS[element] ?? identity;
    m = (t) => parseArray(t, inner) as JsonValue;
  } else m = identity;
  cache.set(oid, m);
  return m;
}

/** Map one row of text values (null for SQL NULL). */
export function mapRow(values: readonly (string | null)[], mappers: readonly Mapper[]): JsonValue[] {
  const out = new Array<JsonValue>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    out[i] = v === null || v === undefined ? null : (mappers[i] as Mapper)(v);
  }
  return out;
}

/** A column as ccp's endpoints show it: name and type OID. */
export interface Field {
  readonly name: string;
  readonly type_oid: number;
}

/** The columns of a result as ccp's endpoints show them. */
export function fieldsOf(r: { readonly columns: readonly { readonly name: string; readonly dataTypeID: number }[] }): Field[] {
  return r.columns.map((f) => ({ name: f.name, type_oid: f.dataTypeID }));
}

/** A result's rows of Postgres text as JSON values, by column type (the mapping above). */
export function jsonRows(r: { readonly columns: readonly { readonly dataTypeID: number }[]; readonly rows: readonly (readonly (string | null)[])[] }): JsonValue[][] {
  const mappers = r.columns.map((f) => mapperFor(f.dataTypeID));
  return r.rows.map((row) => mapRow(row, mappers));
}

/** Rows as objects keyed by column name (a later duplicate name wins, as in node-postgres). */
export function rowsAsObjects(columns: readonly { readonly name: string }[], rows: readonly (readonly JsonValue[])[]): Record<string, JsonValue>[] {
  return rows.map((row) => {
    const o: Record<string, JsonValue> = {};
    for (let i = 0; i < columns.length; i++) o[(columns[i] as { name: string }).name] = row[i] as JsonValue;
    return o;
  });
}
