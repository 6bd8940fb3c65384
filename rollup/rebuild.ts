import type { InfluxDB } from "influx";
import { floorHour } from "../contract/time.js";
import type { PointWriter } from "../storage/influx.js";
import { from, queryGroups, timeRange } from "../storage/influxql.js";
import { ROLLUP_SOURCES } from "../storage/rollup-schema.js";
import { createRollups, type RollupResult } from "./rollups.js";

// Recomputes the rollups of every hour with raw data in a range: after an upgrade from a version without
// rollups, for data written around the ingest (a restore, a bulk import), or for a benchmark's data set.

/** Hour starts in [fromMs, toMs) with at least one raw point the rollups read. */
export async function hoursWithData(influx: InfluxDB, fromMs: number, toMs: number): Promise<number[]> {
  const results = await queryGroups(
    influx,
    Object.entries(ROLLUP_SOURCES).map(
      ([key, field]) =>
        `SELECT count("${field}") FROM ${from(key as keyof typeof ROLLUP_SOURCES)} WHERE ${timeRange(fromMs, toMs)} GROUP BY time(1h) fill(none)`,
    ),
  );
  const hours = new Set<number>();
  for (const groups of results)
    for (const row of groups.flatMap((g) => g.rows)) hours.add(floorHour(row.time.getTime()));
  return [...hours].sort((a, b) => a - b);
}

export async function rebuildRollups(
  influx: InfluxDB,
  write: PointWriter,
  range: { fromMs: number; toMs: number },
  onProgress?: (done: number, total: number) => void,
): Promise<RollupResult> {
  const hours = await hoursWithData(influx, range.fromMs, range.toMs);
  return createRollups(influx, write).recompute(hours, onProgress);
}
