import type { JsonValue } from "@ccp/client";
import type { Align } from "./table.js";

/** Types psql right-aligns: int2, int4, int8, float4, float8, numeric, oid, xid, xid8, cid, money. */
const NUMERIC_OIDS = new Set([21, 23, 20, 700, 701, 1700, 26, 28, 5069, 29, 790]);
/** json, jsonb, and arrays of them. */
const JSON_OIDS = new Set([114, 3802]);
const JSON_ARRAY_OIDS = new Set([199, 3807]);

export function alignFor(typeOid: number): Align {
  return NUMERIC_OIDS.has(typeOid) ? "right" : "left";
}

/**
 * A gateway JSON value back in the text form psql would show: NULL as empty,
 * booleans as t/f, arrays as `{1,2,"a b"}`, json as jsonb prints it
 * (`{"a": 1}`). Strings are shown as they are.
 */
export function cellText(value: JsonValue, typeOid: number): string {
  if (value === null) return "";
  if (JSON_OIDS.has(typeOid)) return jsonText(value);
  if (Array.isArray(value)) return arrayLiteral(value, JSON_ARRAY_OIDS.has(typeOid) ? jsonText : scalarText);
  return scalarText(value);
}

function scalarText(value: JsonValue): string {
  if (value === null) return "";
  if (typeof value === "boolean") return value ? "t" : "f";
  if (typeof value === "object") return jsonText(value); // a composite the gateway sent as JSON
  return String(value);
}

function jsonText(value: JsonValue): string {
  if (Array.isArray(value)) return `[${value.map(jsonText).join(", ")}]`;
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value)
      .map(([k, v]) => `${JSON.stringify(k)}: ${jsonText(v)}`)
      .join(", ")}}`;
  }
  return JSON.stringify(value);
}

function arrayLiteral(items: readonly JsonValue[], element: (v: JsonValue) => string): string {
  const parts = items.map((item) => {
    if (item === null) return "NULL";
    if (Array.isArray(item) && element === scalarText) return arrayLiteral(item, element);
    const text = element(item);
    return text === "" || /^null$/i.test(text) || /[{},"\\\s]/.test(text) ? `"${text.replace(/["\\]/g, "\\$&")}"` : text;
  });
  return `{${parts.join(",")}}`;
}
