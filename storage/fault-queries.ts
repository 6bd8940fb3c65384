import type { InfluxDB } from "influx";
import { DAY_MS, WEEK_MS } from "../contract/time.js";
import { deviceTagIs, FAULT_COLUMNS, type FaultRow, faultRow } from "./device-queries.js";
import { from, queryGroups, tagIs, timeRange } from "./influxql.js";

// The fault list. InfluxDB pays per series a query touches, so a device's faults come from `fault` (its
// own few series) and every other list from `fault_list` (the same faults keyed only by kind, model,
// firmware, code and severity: a few hundred series in all). docs/storage.md has the figures.

export type FaultQuery = {
  fromMs: number;
  toMs: number;
  device?: string | undefined;
  kind?: string | undefined;
  model?: string | undefined;
  firmware?: string | undefined;
  code?: string | undefined;
  severity?: string | undefined;
  limit: number;
  offset: number;
};

const TAG_FILTERS = ["kind", "model", "firmware", "code", "severity"] as const;

/** The statement for a page of faults, newest first, `limit` rows from `offset`. */
export function faultPageStatement(q: FaultQuery & { rows: number }): string {
  const conditions = [timeRange(q.fromMs, q.toMs)];
  for (const tag of TAG_FILTERS) {
    const value = q[tag];
    if (value !== undefined) conditions.push(tagIs(tag, value));
  }
  const source = from(q.device === undefined ? "faultList" : "fault");
  if (q.device !== undefined) conditions.unshift(deviceTagIs(q.device));
  return `SELECT ${FAULT_COLUMNS} FROM ${source} WHERE ${conditions.join(" AND ")} ORDER BY time DESC LIMIT ${q.rows} OFFSET ${q.offset}`;
}

/** The starts to try, newest span first, ending with the window's own. */
export function narrowerStarts(q: { fromMs: number; toMs: number }): number[] {
  const starts = [DAY_MS, WEEK_MS].map((span) => q.toMs - span).filter((start) => start > q.fromMs);
  return [...starts, q.fromMs];
}

export type FaultQueries = ReturnType<typeof faultQueries>;

export function faultQueries(influx: InfluxDB) {
  return {
    /**
     * Newest first: up to `rows` faults from `offset`. The newest day, then week, is asked first: a page
     * found whole there is the window's page too (whatever lies outside is older), and InfluxDB reads
     * only that much of each series (30 days of fault_list at 10,000 devices: 20 ms; the newest day: 3 ms).
     */
    async faults(q: FaultQuery & { rows: number }): Promise<FaultRow[]> {
      for (const fromMs of narrowerStarts(q)) {
        const [groups] = await queryGroups(influx, [faultPageStatement({ ...q, fromMs })]);
        const rows = (groups ?? []).flatMap((g) => g.rows);
        if (rows.length === q.rows || fromMs === q.fromMs) return rows.map(faultRow);
      }
      return [];
    },
  };
}
