import type { InfluxDB } from "influx";
import { SEVERITIES, type Severity } from "../contract/messages.js";
import { from, type Group, queryGroups, type Row, tagIs } from "./influxql.js";
import type { SumQuery } from "./rollup-reader.js";
import { COHORT_SUMS, faultField, RATINGS, ratingField } from "./rollup-schema.js";

// The rollup queries behind fleet health and firmware cohorts, and their rows typed. Sums are read through
// the rollup reader (storage/rollup-reader.ts), which caches them per bucket.

const COHORTS = { hourly: "cohort1h", daily: "cohort1d" } as const;
const ISSUES = { hourly: "issue1h", daily: "issue1d" } as const;
const COHORT_TAGS = ["kind", "model", "firmware", "region"] as const;
type CohortTag = (typeof COHORT_TAGS)[number];

export type CohortFilter = Partial<Record<CohortTag, string>>;

const num = (value: unknown) => (typeof value === "number" && Number.isFinite(value) ? value : 0);

/** " AND tag = value" for each tag the filter fixes. */
const conditions = (filter: CohortFilter) =>
  COHORT_TAGS.flatMap((tag) => {
    const value = filter[tag];
    return value === undefined ? [] : [` AND ${tagIs(tag, value)}`];
  }).join("");

/** Every additive cohort_1h field of the filtered cohorts, per group of `groupBy`. */
export const cohortSumsQuery = (filter: CohortFilter, groupBy: readonly CohortTag[]): SumQuery => ({
  rollup: COHORTS,
  select: COHORT_SUMS,
  where: conditions(filter),
  groupBy,
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

/** cohortSumsQuery's rows (as RollupView.sums gives them). */
export function cohortSumRows(groups: readonly Group[]): CohortSumRow[] {
  return [...eachRow(groups)].map(([g, row]) => ({
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

/** Exposure per firmware of these firmwares of one model. */
export const firmwareHoursQuery = (model: string, firmwares: readonly string[]): SumQuery => ({
  rollup: COHORTS,
  select: `sum("hours") AS "hours"`,
  where: cohortsOf(model, firmwares),
  groupBy: ["firmware"],
});

/** Faults per firmware, severity and code of these firmwares of one model. */
export const firmwareFaultsQuery = (model: string, firmwares: readonly string[]): SumQuery => ({
  rollup: ISSUES,
  select: `sum("n") AS "n"`,
  where: cohortsOf(model, firmwares),
  groupBy: ["firmware", "severity", "code"],
});

const cohortsOf = (model: string, firmwares: readonly string[]) =>
  ` AND ${tagIs("model", model)} AND (${firmwares.map((f) => tagIs("firmware", f)).join(" OR ")})`;

export type HoursRow = { model: string; firmware: string; startMs: number; hours: number };

/** versionHoursQuery's or firmwareHoursQuery's rows. */
export const hoursRows = (groups: readonly Group[]): HoursRow[] =>
  [...eachRow(groups)].map(([g, row]) => ({
    model: g.tags.model ?? "",
    firmware: g.tags.firmware ?? "",
    startMs: row.time.getTime(),
    hours: num(row.hours),
  }));

export type FaultCountRow = { firmware: string; severity: string; code: string; n: number };

/** firmwareFaultsQuery's rows. */
export const faultCountRows = (groups: readonly Group[]): FaultCountRow[] =>
  [...eachRow(groups)].map(([g, row]) => ({
    firmware: g.tags.firmware ?? "",
    severity: g.tags.severity ?? "",
    code: g.tags.code ?? "",
    n: num(row.n),
  }));

/** When each version (of `model`, or every model) first had an activity hour, before `toMs`. */
export async function firstActivity(
  influx: InfluxDB,
  toMs: number,
  model: string | undefined,
): Promise<Array<{ model: string; firmware: string; firstMs: number }>> {
  const only = model === undefined ? "" : ` AND ${tagIs("model", model)}`;
  const [found = []] = await queryGroups(influx, [
    `SELECT first("hours") AS "hours" FROM ${from("cohort1h")} WHERE time < ${toMs}ms AND "hours" > 0${only} GROUP BY "model", "firmware"`,
  ]);
  return found.flatMap((g) => {
    const row = g.rows[0];
    return row === undefined
      ? []
      : [{ model: g.tags.model ?? "", firmware: g.tags.firmware ?? "", firstMs: row.time.getTime() }];
  });
}
