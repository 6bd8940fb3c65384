import type { InfluxDB } from "influx";
import { SEVERITIES, type Severity } from "../contract/messages.js";
import { from, type Group, queryGroups, type Row, tagIs } from "./influxql.js";
import type { SumQuery } from "./rollup-reader.js";
import { COHORT_SUM_FIELDS, COHORT_TAGS, faultField, RATINGS, ratingField } from "./rollup-schema.js";

// The rollup queries behind fleet health and firmware cohorts, and their rows typed. Sums are read through
// the rollup reader (storage/rollup-reader.ts), which caches them per bucket.

const COHORTS = { hourly: "cohort1h", daily: "cohort1d" } as const;

const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : 0);

/**
 * Every additive cohort_1h field per cohort (kind, model, firmware, region). A fleet has a few hundred
 * cohorts whatever its size, so one cached query serves every selection and grouping, filtered and added
 * up in memory, rather than one InfluxDB query per filter.
 */
export const cohortSumsQuery = (): SumQuery => ({
  rollup: COHORTS,
  select: COHORT_SUM_FIELDS.map((field) => `"${field}"`).join(", "),
  where: "",
  groupBy: COHORT_TAGS,
  raw: true,
});

export type CohortSumRow = {
  tags: Record<string, string>;
  startMs: number;
  sums: {
    hours: number;
    faults: Record<Severity, number>;
    reboots: number;
    rejections: number;
    ratings: number[];
  };
};

const eachRow = function* (groups: readonly Group[]): Generator<[Group, Row]> {
  for (const g of groups) for (const row of g.rows) yield [g, row];
};

/** Each answer's rows typed once: the reader keeps a bucket's answer while its revision stays. */
const typed = new WeakMap<Group, CohortSumRow[]>();

/** cohortSumsQuery's rows (as RollupView.sums gives them). */
export function cohortSumRows(groups: readonly Group[]): CohortSumRow[] {
  return groups.flatMap((g) => {
    let rows = typed.get(g);
    if (rows === undefined) {
      rows = g.rows.map((row) => ({
        tags: g.tags,
        startMs: row.time.getTime(),
        sums: {
          hours: num(row.hours),
          faults: Object.fromEntries(SEVERITIES.map((s) => [s, num(row[faultField(s)])])) as Record<
            Severity,
            number
          >,
          reboots: num(row.reboots),
          rejections: num(row.rejections),
          ratings: Array.from({ length: RATINGS }, (_, rating) => num(row[ratingField(rating)])),
        },
      }));
      typed.set(g, rows);
    }
    return rows;
  });
}

/**
 * Exposure per model and firmware. Cohort points with no exposure exist for hours with only faults or
 * events: a version is active where it has activity hours.
 */
export const versionHoursQuery = (model: string | undefined): SumQuery => ({
  rollup: COHORTS,
  select: `sum("hours") AS "hours"`,
  where: ` AND "hours" > 0${model === undefined ? "" : ` AND ${tagIs("model", model)}`}`,
  groupBy: ["model", "firmware"],
});

export type HoursRow = { model: string; firmware: string; startMs: number; hours: number };

/** versionHoursQuery's rows. */
export const hoursRows = (groups: readonly Group[]): HoursRow[] =>
  [...eachRow(groups)].map(([g, row]) => ({
    model: g.tags.model ?? "",
    firmware: g.tags.firmware ?? "",
    startMs: row.time.getTime(),
    hours: num(row.hours),
  }));

/** When each version of every model first had an activity hour. */
export async function firstActivity(
  influx: InfluxDB,
): Promise<Array<{ model: string; firmware: string; firstMs: number }>> {
  const [found = []] = await queryGroups(influx, [
    `SELECT first("hours") AS "hours" FROM ${from("cohort1h")} WHERE "hours" > 0 GROUP BY "model", "firmware"`,
  ]);
  return found.flatMap((g) => {
    const row = g.rows[0];
    return row === undefined
      ? []
      : [{ model: g.tags.model ?? "", firmware: g.tags.firmware ?? "", firstMs: row.time.getTime() }];
  });
}
