import type { InfluxDB } from "influx";
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

export type FaultQueries = ReturnType<typeof faultQueries>;

export function faultQueries(influx: InfluxDB) {
  return {
    /** Newest first: up to `rows` faults from `offset`. */
    async faults(q: FaultQuery & { rows: number }): Promise<FaultRow[]> {
      const [groups] = await queryGroups(influx, [faultPageStatement(q)]);
      return (groups ?? []).flatMap((g) => g.rows).map(faultRow);
    },
  };
}
