import type { InfluxDB } from "influx";
import { floorDay, floorHour } from "../contract/time.js";
import type { PointWriter } from "../storage/influx.js";
import { from, queryGroups, type Row, tagIs, timeRange } from "../storage/influxql.js";
import { ROLLUP_FORMAT, ROLLUP_SOURCES } from "../storage/rollup-schema.js";
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

/**
 * Hours whose rollups were written in an older format (docs/storage.md "Rollups", after an upgrade): an hour
 * whose rollup_rev lacks ROLLUP_FORMAT, and an hour of each day whose day rollup does (its day is redone
 * with it). One row per rolled-up bucket is read: a year of hours is 8,760 rows.
 */
export async function hoursInOlderFormat(influx: InfluxDB): Promise<number[]> {
  const [hourRevs = [], dayRevs = []] = await queryGroups(influx, [
    `SELECT "rev", "format" FROM ${from("rollupRev")} WHERE ${tagIs("span", "1h")}`,
    `SELECT "rev", "format" FROM ${from("rollupRev")} WHERE ${tagIs("span", "1d")}`,
  ]);
  const older = (row: Row) => typeof row.format !== "number" || row.format < ROLLUP_FORMAT;
  const hours = new Set<number>();
  const rolledUp = new Map<number, number>();
  for (const row of hourRevs.flatMap((g) => g.rows)) {
    const hour = row.time.getTime();
    if (older(row)) hours.add(hour);
    if (!rolledUp.has(floorDay(hour))) rolledUp.set(floorDay(hour), hour);
  }
  const daysRedone = new Set([...hours].map(floorDay));
  for (const row of dayRevs.flatMap((g) => g.rows)) {
    const day = row.time.getTime();
    const hour = rolledUp.get(day);
    if (older(row) && hour !== undefined && !daysRedone.has(day)) hours.add(hour);
  }
  return [...hours].sort((a, b) => a - b);
}
