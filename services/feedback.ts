import { randomInt, randomUUID } from "node:crypto";
import { feedbackBesideFaults } from "../analytics/review.js";
import type {
  FeedbackBody,
  FeedbackCategory,
  FeedbackRecord,
  FeedbackSummary,
} from "../contract/api/feedback.js";
import { err, ok, type Result } from "../contract/result.js";
import { alignHours, iso, type Window } from "../contract/time.js";
import { type FeedbackRow, feedbackPoint, readFeedback, writeFeedback } from "../storage/feedback-queries.js";
import type { ServiceBag } from "./bag.js";

// Customer feedback the support desk records (POST /api/v1/feedback), tagged with the device's kind, model
// and firmware at the time (the device directory), and set beside each cohort's fault rate and the ratings
// its devices report (fleet health, from the rollups).

type Maybe<T> = T | undefined;
export type FeedbackListInput = Window & {
  device?: Maybe<string>;
  model?: Maybe<string>;
  firmware?: Maybe<string>;
  category?: Maybe<FeedbackCategory>;
  limit: number;
  offset: number;
};

export type FeedbackPageData = { items: FeedbackRecord[]; total: number; nextOffset: number | null };

export interface FeedbackService {
  /** Records what a customer said of a device; not ok when the device is unknown. */
  record(
    body: FeedbackBody,
    actor: string,
    atMs: number,
  ): Promise<Result<FeedbackRecord, { reason: "unknown_device" }>>;
  /** The records in the window, newest first. */
  list(q: FeedbackListInput): Promise<FeedbackPageData>;
  /** Per model and firmware: feedback beside exposure, fault rate and device ratings (whole UTC hours). */
  summary(q: Window & { model?: Maybe<string> }): Promise<FeedbackSummary>;
  /** The summary and the records it counts, read once (the review shows both). */
  summaryWithRows(
    q: Window & { model?: Maybe<string> },
  ): Promise<{ summary: FeedbackSummary; rows: FeedbackRow[] }>;
}

export const recordOf = (row: FeedbackRow): FeedbackRecord => ({
  id: row.id,
  device: row.device,
  kind: row.kind,
  model: row.model,
  firmware: row.firmware,
  category: row.category,
  text: row.text,
  rating: row.rating,
  actor: row.actor,
  at: iso(row.atMs),
});

export function createFeedbackService(bag: ServiceBag): FeedbackService {
  const rows = (q: Window & { model?: Maybe<string> }) =>
    readFeedback(bag.influx, { fromMs: q.fromMs, toMs: q.toMs, model: q.model });

  const summaryWithRows: FeedbackService["summaryWithRows"] = async (q) => {
    const window = alignHours(q);
    const [records, fleet] = await Promise.all([
      rows({ ...window, model: q.model }),
      bag.health.fleetSummary({ ...window, model: q.model, groupBy: ["model", "firmware"] }),
    ]);
    const cohorts = fleet.groups.map((g) => ({
      model: g.group.model ?? "",
      firmware: g.group.firmware ?? "",
      devices: g.devices,
      exposureHours: g.exposureHours,
      faults: g.faults.count,
      deviceRatings: { count: g.feedback.count, mean: g.feedback.mean },
    }));
    const summary: FeedbackSummary = {
      from: iso(window.fromMs),
      to: iso(window.toMs),
      model: q.model ?? null,
      groups: feedbackBesideFaults(records, cohorts),
    };
    return { summary, rows: records };
  };

  return {
    async record(body, actor, atMs) {
      const device = await bag.directory.lookup(body.device);
      if (device === undefined) return err({ reason: "unknown_device" });
      const row: FeedbackRow = {
        id: randomUUID(),
        device: body.device,
        kind: device.hello.kind,
        model: device.hello.model,
        firmware: device.hello.firmware,
        category: body.category,
        text: body.text,
        rating: body.rating ?? null,
        actor,
        atMs,
      };
      await writeFeedback(bag.write, feedbackPoint(row, randomInt(1, 1_000_000)));
      return ok(recordOf(row));
    },

    async list(q) {
      const found = await readFeedback(bag.influx, q);
      const page = found.slice(q.offset, q.offset + q.limit);
      const end = q.offset + page.length;
      return {
        items: page.map(recordOf),
        total: found.length,
        nextOffset: end < found.length ? end : null,
      };
    },

    async summary(q) {
      return (await summaryWithRows(q)).summary;
    },

    summaryWithRows,
  };
}
