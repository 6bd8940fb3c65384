import type { InfluxDB } from "influx";
import { DAY_MS, HOUR_MS } from "../rollup/sets.js";
import { from, type Group, queryGroups, timeRange } from "./influxql.js";
import type { MeasurementKey } from "./schema.js";

// Sums over a long window read the daily rollup for the whole UTC days inside it and the hourly one for
// the hours at its edges: a month of cohort_1h is some 30,000 points, of cohort_1d about 1,200. InfluxDB
// 1.x takes no OR between time ranges, so each range is a statement of its own, sent in one request.

export type Window = { fromMs: number; toMs: number };

/** The window widened to whole UTC hours, the rollups' grain: every analytics query uses it so. */
export const alignHours = (w: Window): Window => ({
  fromMs: Math.floor(w.fromMs / HOUR_MS) * HOUR_MS,
  toMs: Math.ceil(w.toMs / HOUR_MS) * HOUR_MS,
});
type Range = Window & { daily: boolean };

/** An hour-aligned window as at most three ranges: edge hours, whole days, edge hours. */
export function rangesOf(window: Window): Range[] {
  const firstDay = Math.ceil(window.fromMs / DAY_MS) * DAY_MS;
  const lastDay = Math.floor(window.toMs / DAY_MS) * DAY_MS;
  if (firstDay >= lastDay) return [{ ...window, daily: false }];
  const ranges: Range[] = [];
  if (window.fromMs < firstDay) ranges.push({ fromMs: window.fromMs, toMs: firstDay, daily: false });
  ranges.push({ fromMs: firstDay, toMs: lastDay, daily: true });
  if (lastDay < window.toMs) ranges.push({ fromMs: lastDay, toMs: window.toMs, daily: false });
  return ranges;
}

/**
 * The series of `statement` over each range of each window, all in one request; statement gets the
 * measurement to read and the time condition. Callers add the series up: they are sums of disjoint ranges.
 */
export async function overRanges(
  influx: InfluxDB,
  rollup: { hourly: MeasurementKey; daily: MeasurementKey },
  windows: readonly Window[],
  statement: (measurement: string, time: string) => string,
): Promise<Group[][]> {
  const planned = windows.map((w) => {
    if (w.fromMs % HOUR_MS !== 0 || w.toMs % HOUR_MS !== 0)
      throw new Error("rollup windows must start and end on whole hours");
    return rangesOf(w);
  });
  const statements = planned
    .flat()
    .map((r) => statement(from(r.daily ? rollup.daily : rollup.hourly), timeRange(r.fromMs, r.toMs)));
  const results = statements.length > 0 ? await queryGroups(influx, statements) : [];
  let at = 0;
  return planned.map((ranges) => {
    const groups = results.slice(at, at + ranges.length).flat();
    at += ranges.length;
    return groups;
  });
}
