import { type InfluxDB, type IResults, escape as influxql } from "influx";
// node-influx exports this error class only from its pool module.
import { ServiceNotAvailableError } from "influx/lib/src/pool.js";
import { MEASUREMENTS, type MeasurementKey, type Point } from "./schema.js";

// What the stores share to read InfluxDB: quoting, the shape of results, and one rule for an outage.

export { influxql };

/** "rp"."measurement", quoted. */
export const from = (key: MeasurementKey) =>
  `${influxql.quoted(MEASUREMENTS[key].rp)}.${influxql.quoted(MEASUREMENTS[key].name)}`;
export const tagIs = (tag: string, value: string) => `${influxql.quoted(tag)} = ${influxql.stringLit(value)}`;
export const timeRange = (fromMs: number, toMs: number) => `time >= ${fromMs}ms AND time < ${toMs}ms`;
export const text = (value: unknown) => (typeof value === "string" ? value : null);

export type Row = Record<string, unknown> & { time: Date };
export type Group = { name: string; tags: Record<string, string>; rows: Row[] };

/** InfluxDB could not be reached (as opposed to refusing a query, which is a defect). */
export class StoreUnavailable extends Error {
  constructor(options: { cause: unknown }) {
    super("InfluxDB is not reachable", options);
    this.name = "StoreUnavailable";
  }
}

const NETWORK_ERRORS = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
]);

/** InfluxDB could not be reached; fetch (createPointWriter) reports the socket's error as a cause. */
export function isUnreachable(error: unknown): boolean {
  if (error instanceof ServiceNotAvailableError) return true;
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === "string" && NETWORK_ERRORS.has(code)) return true;
  const cause = (error as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== error && isUnreachable(cause);
}

/** Writes points through a PointWriter (nothing when there are none); an outage is StoreUnavailable. */
export async function writeOrUnavailable(
  write: (points: readonly Point[]) => Promise<void>,
  points: readonly Point[],
): Promise<void> {
  if (points.length === 0) return;
  try {
    await write(points);
  } catch (cause) {
    if (isUnreachable(cause)) throw new StoreUnavailable({ cause });
    throw cause;
  }
}

/** Runs one statement or several in one request; one list of series per statement. An outage is StoreUnavailable. */
export async function queryGroups(influx: InfluxDB, statements: readonly string[]): Promise<Group[][]> {
  try {
    const results = await influx.query<Record<string, unknown>>([...statements]);
    // node-influx unwraps the answer to a single statement.
    if (statements.length === 1) return [(results as unknown as IResults<unknown>).groups() as Group[]];
    return results.map((r) => r.groups() as Group[]);
  } catch (cause) {
    if (isUnreachable(cause)) throw new StoreUnavailable({ cause });
    throw cause;
  }
}
