/** A result as the SQL editor keeps it: field names and rows as arrays in field order. */
export interface ResultTable {
  readonly fields: readonly { readonly name: string }[];
  readonly rows: readonly (readonly unknown[])[];
}

/** One value as text: NULL is empty, JSON values (json/jsonb, arrays) as JSON. */
function cellText(v: unknown): string {
  if (v === null || v === undefined) return "";
  if (typeof v === "object") return JSON.stringify(v);
  return String(v);
}

/** RFC 4180: a field with a comma, quote, CR or LF is quoted and its quotes doubled; lines end in CRLF. */
export function csvField(text: string): string {
  return /[",\r\n]/.test(text) || /^\s|\s$/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

export function toCsv(result: ResultTable): string {
  const lines = [result.fields.map((f) => csvField(f.name)).join(",")];
  for (const row of result.rows) lines.push(result.fields.map((_f, i) => csvField(cellText(row[i]))).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** Rows as an array of objects; a repeated column name gets a suffix (`id`, `id_2`) instead of overwriting. */
export function toJsonRows(result: ResultTable): Record<string, unknown>[] {
  const names: string[] = [];
  const seen = new Map<string, number>();
  for (const f of result.fields) {
    const n = (seen.get(f.name) ?? 0) + 1;
    seen.set(f.name, n);
    names.push(n === 1 ? f.name : `${f.name}_${n}`);
  }
  return result.rows.map((row) => Object.fromEntries(names.map((n, i) => [n, row[i] ?? null])));
}

export function toJson(result: ResultTable): string {
  return JSON.stringify(toJsonRows(result), null, 2) + "\n";
}
