import type { FieldValue, Point } from "./schema.js";

// Our own encoder rather than node-influx's: node-influx does not escape newlines in tag values nor the
// measurement name, and device-supplied strings must never be able to start a line of their own.

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must not pass
const CONTROL = /[\u0000-\u001f\u007f]/g;

// Most names and values need no escaping: one test spares them the replacements' copies.
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must not pass
const MEASUREMENT_SPECIAL = /[\u0000-\u001f\u007f\\, ]/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what must not pass
const KEY_SPECIAL = /[\u0000-\u001f\u007f\\,= ]/;

/** Measurement names: commas and spaces escaped; a control character can't be escaped, so it is replaced. */
export const escapeMeasurement = (name: string) =>
  MEASUREMENT_SPECIAL.test(name) ? name.replace(CONTROL, "\uFFFD").replace(/([\\, ])/g, "\\$1") : name;

/** Tag keys, tag values and field keys: commas, equals signs and spaces escaped. */
export const escapeKey = (key: string) =>
  KEY_SPECIAL.test(key) ? key.replace(CONTROL, "\uFFFD").replace(/([\\,= ])/g, "\\$1") : key;

/** String field values may hold any character; quotes and backslashes are escaped. */
export const quoteString = (value: string) =>
  value.includes('"') || value.includes("\\") ? `"${value.replace(/(["\\])/g, "\\$1")}"` : `"${value}"`;

export function encodeFieldValue(value: FieldValue): string {
  if (typeof value === "string") return quoteString(value);
  if (typeof value === "boolean") return value ? "true" : "false";
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new RangeError(`field value ${value} is not finite`);
    return String(value);
  }
  // A value read back from the journal's JSON may be anything (NaN comes back as null): refuse it as a range.
  if (typeof value !== "object" || value === null || !Number.isSafeInteger(value.int))
    throw new RangeError(
      `field value ${JSON.stringify(value)?.slice(0, 64)} is neither finite nor a safe integer`,
    );
  return `${value.int}i`;
}

export function encodePoint(point: Point): string {
  let line = escapeMeasurement(point.measurement);
  for (const key of Object.keys(point.tags).sort()) {
    const value = point.tags[key] ?? "";
    if (value !== "") line += `,${escapeKey(key)}=${escapeKey(value)}`;
  }
  let separator = " ";
  for (const key in point.fields) {
    if (!Object.hasOwn(point.fields, key)) continue;
    line += `${separator}${escapeKey(key)}=${encodeFieldValue(point.fields[key] as FieldValue)}`;
    separator = ",";
  }
  if (separator === " ") throw new RangeError(`point of ${point.measurement} has no fields`);
  return `${line} ${point.timeNs}`;
}

export type Encoded = { ok: true; line: string } | { ok: false; error: string };

/** encodePoint as a value, for callers that must go on past a point that has no line (no fields, NaN). */
export function tryEncodePoint(point: Point): Encoded {
  try {
    return { ok: true, line: encodePoint(point) };
  } catch (error) {
    if (error instanceof RangeError) return { ok: false, error: error.message };
    throw error;
  }
}

/**
 * At least the bytes encodePoint(point) takes, without encoding it: a UTF-16 unit is at most 3 bytes of
 * UTF-8, escaped or not (an escaped character is ASCII: 2 bytes), a number or boolean at most 32 characters.
 */
export function pointBytesAtMost(point: Point): number {
  let bytes = 3 * point.measurement.length + point.timeNs.length + 2;
  for (const key in point.tags) bytes += 3 * (key.length + (point.tags[key]?.length ?? 0)) + 2;
  for (const key in point.fields) {
    const value = point.fields[key];
    bytes += 3 * key.length + 2 + (typeof value === "string" ? 3 * value.length + 2 : 32);
  }
  return bytes;
}
