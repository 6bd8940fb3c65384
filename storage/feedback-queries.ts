import type { InfluxDB } from "influx";
import { FeedbackCategory } from "../contract/api/feedback.js";
import type { PointWriter } from "./influx.js";
import { from, queryGroups, tagIs, text, timeRange, writeOrUnavailable } from "./influxql.js";
import { MEASUREMENTS, type Point, pointTimeNs } from "./schema.js";

// What the support desk recorded ("long"."feedback"): one point per record, tagged with the device and the
// kind, model and firmware it had at the time (from the device directory) and the category; the text, the
// rating, who recorded it and the record's id are fields.

export type FeedbackRow = {
  id: string;
  device: string;
  kind: string;
  model: string;
  firmware: string;
  category: FeedbackCategory;
  text: string;
  rating: number | null;
  actor: string;
  atMs: number;
};

export type FeedbackFilter = {
  fromMs: number;
  toMs: number;
  device?: string | undefined;
  model?: string | undefined;
  firmware?: string | undefined;
  category?: FeedbackCategory | undefined;
};

/** nanos 1-999,999: two records in one millisecond of one device and category keep both. */
export function feedbackPoint(row: FeedbackRow, nanos: number): Point {
  return {
    measurement: MEASUREMENTS.feedback.name,
    rp: MEASUREMENTS.feedback.rp,
    tags: {
      device: row.device,
      kind: row.kind,
      model: row.model,
      firmware: row.firmware,
      category: row.category,
    },
    fields: {
      id: row.id,
      text: row.text,
      actor: row.actor,
      ...(row.rating === null ? {} : { rating: { int: row.rating } }),
    },
    timeNs: pointTimeNs(row.atMs, nanos),
  };
}

export const writeFeedback = (write: PointWriter, point: Point): Promise<void> =>
  writeOrUnavailable(write, [point]);

const TAG_FILTERS = ["device", "model", "firmware", "category"] as const;

/** The records in [fromMs, toMs) matching the filter, newest first; rows that do not parse are skipped. */
export async function readFeedback(influx: InfluxDB, filter: FeedbackFilter): Promise<FeedbackRow[]> {
  const tags = TAG_FILTERS.flatMap((t) => {
    const value = filter[t];
    return value === undefined ? [] : [` AND ${tagIs(t, value)}`];
  }).join("");
  const [groups = []] = await queryGroups(influx, [
    `SELECT "id", "text", "rating", "actor" FROM ${from("feedback")} WHERE ${timeRange(filter.fromMs, filter.toMs)}${tags} GROUP BY "device", "kind", "model", "firmware", "category"`,
  ]);
  const rows: FeedbackRow[] = [];
  for (const group of groups) {
    const category = FeedbackCategory.safeParse(group.tags.category);
    const { device, kind, model, firmware } = group.tags;
    if (!category.success || !device || !kind || !model || !firmware) continue;
    for (const row of group.rows) {
      const id = text(row.id);
      const body = text(row.text);
      const actor = text(row.actor);
      if (id === null || body === null || actor === null) continue;
      const rating = typeof row.rating === "number" ? row.rating : null;
      rows.push({
        id,
        device,
        kind,
        model,
        firmware,
        category: category.data,
        text: body,
        rating,
        actor,
        atMs: row.time.getTime(),
      });
    }
  }
  return rows.sort((a, b) => b.atMs - a.atMs || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}
