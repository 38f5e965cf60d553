/** Names of the built-in types by OID (pg_type.h), for the result grid's headers. Others are looked up. */
export const BUILTIN_TYPES: Readonly<Record<number, string>> = {
  16: "boolean", 17: "bytea", 18: "char", 19: "name", 20: "bigint", 21: "smallint", 23: "integer", 24: "regproc", 25: "text", 26: "oid",
  114: "json", 142: "xml", 600: "point", 650: "cidr", 700: "real", 701: "double precision", 790: "money", 829: "macaddr", 869: "inet",
  1000: "boolean[]", 1005: "smallint[]", 1007: "integer[]", 1009: "text[]", 1015: "varchar[]", 1016: "bigint[]", 1021: "real[]", 1022: "double precision[]",
  1042: "character", 1043: "varchar", 1082: "date", 1083: "time", 1114: "timestamp", 1115: "timestamp[]", 1182: "date[]", 1184: "timestamptz", 1185: "timestamptz[]",
  1186: "interval", 1231: "numeric[]", 1266: "timetz", 1560: "bit", 1562: "varbit", 1700: "numeric", 2205: "regclass", 2249: "record", 2278: "void",
  2950: "uuid", 2951: "uuid[]", 3614: "tsvector", 3802: "jsonb", 3807: "jsonb[]", 3904: "int4range", 3926: "int8range", 4089: "regnamespace",
};

export function typeName(oid: number, extra: ReadonlyMap<number, string> = new Map()): string {
  return BUILTIN_TYPES[oid] ?? extra.get(oid) ?? `oid ${oid}`;
}
