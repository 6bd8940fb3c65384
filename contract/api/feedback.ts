import { z } from "zod";
import { Label } from "../messages.js";
import { count, DeviceId, isoTime, pageOf, paging, timeParam } from "./common.js";
import { MAX_SERIES_DAYS } from "./fleet.js";

// Customer feedback the support desk records (ISO 10002 complaints, ISO 10004 satisfaction), and what it
// says beside the fault rates the devices report.

/**
 * A fixed list, so counts compare across models, firmware and months: a complaint (ISO 10002, something is
 * wrong), a return (the costliest complaint: the device goes back), a question (no defect, but the product
 * needed explaining), a suggestion (an input to improvement), praise (what to keep).
 */
export const FEEDBACK_CATEGORIES = ["complaint", "return", "question", "suggestion", "praise"] as const;
export const FeedbackCategory = z.enum(FEEDBACK_CATEGORIES);
export type FeedbackCategory = z.infer<typeof FeedbackCategory>;

export const MAX_FEEDBACK_TEXT = 2000;

export const FeedbackBody = z
  .strictObject({
    device: DeviceId.meta({ example: "modem-0001" }),
    category: FeedbackCategory,
    text: z
      .string()
      .trim()
      .min(1)
      .max(MAX_FEEDBACK_TEXT)
      .meta({ description: `What the customer said, 1-${MAX_FEEDBACK_TEXT} characters` }),
    rating: z
      .number()
      .int()
      .min(1)
      .max(5)
      .optional()
      .meta({ description: "The customer's satisfaction, 1 (very unhappy) to 5 (very happy)" }),
  })
  .meta({ id: "FeedbackBody" });
export type FeedbackBody = z.infer<typeof FeedbackBody>;

export const FeedbackRecord = z
  .object({
    id: z.string(),
    device: z.string(),
    kind: z.string(),
    model: z.string(),
    firmware: z.string().meta({ description: "The firmware the device ran when the feedback was recorded" }),
    category: FeedbackCategory,
    text: z.string(),
    rating: z.number().int().min(1).max(5).nullable(),
    actor: z.string().meta({ description: "Who recorded it" }),
    at: isoTime,
  })
  .meta({ id: "FeedbackRecord" });
export type FeedbackRecord = z.infer<typeof FeedbackRecord>;

const window = {
  from: timeParam("Start, inclusive; default `to` minus 30d"),
  to: timeParam("End, exclusive; default now"),
};

export const FeedbackListQuery = z.strictObject({
  ...window,
  device: DeviceId.optional(),
  model: Label.optional(),
  firmware: Label.optional(),
  category: FeedbackCategory.optional(),
  ...paging,
});
export type FeedbackListQuery = z.infer<typeof FeedbackListQuery>;

export const FeedbackPage = z
  .object({ ...pageOf(FeedbackRecord), total: count, from: isoTime, to: isoTime })
  .meta({ id: "FeedbackPage", description: "Newest first" });
export type FeedbackPage = z.infer<typeof FeedbackPage>;

export const FeedbackSummaryQuery = z.strictObject({
  from: timeParam(
    `Start, inclusive; default \`to\` minus 30d; at most ${MAX_SERIES_DAYS} days before \`to\``,
  ),
  to: timeParam("End, exclusive; default now"),
  model: Label.optional(),
});

const ByCategory = z.object(
  Object.fromEntries(FEEDBACK_CATEGORIES.map((c) => [c, count])) as {
    [K in FeedbackCategory]: typeof count;
  },
);

const mean = (description: string) => z.number().nullable().meta({ description });

export const FeedbackBesideFaults = z
  .object({
    model: z.string(),
    firmware: z.string(),
    feedback: z
      .object({
        total: count.meta({ description: "Records the support desk made in the window" }),
        byCategory: ByCategory,
        ratings: count.meta({ description: "Records with a rating: the sample size of the mean" }),
        meanRating: mean("Mean support-desk rating 1-5; null without ratings"),
        per1000Devices: mean("total / devices × 1000; null without active devices"),
      })
      .meta({ description: "What customers told the support desk (POST /api/v1/feedback)" }),
    devices: count.meta({ description: "Distinct devices of the cohort active in the window" }),
    exposureHours: count.meta({ description: "Device-hours the cohort reported" }),
    faults: count,
    faultsPer1000h: mean("faults / exposureHours × 1000; null without exposure"),
    deviceRatings: z
      .object({ count, mean: mean("Mean rating 0-10; null without ratings") })
      .meta({ description: "Ratings the devices' owners gave on the device (feedback events)" }),
  })
  .meta({ id: "FeedbackBesideFaults" });
export type FeedbackBesideFaults = z.infer<typeof FeedbackBesideFaults>;

export const FeedbackSummary = z
  .object({
    from: isoTime.meta({ description: "Start of the window used: `from` floored to the UTC hour" }),
    to: isoTime.meta({ description: "End (exclusive): `to` raised to the next UTC hour" }),
    model: z.string().nullable(),
    groups: z
      .array(FeedbackBesideFaults)
      .meta({ description: "Per model and firmware: every cohort with exposure or feedback in the window" }),
  })
  .meta({ id: "FeedbackSummary" });
export type FeedbackSummary = z.infer<typeof FeedbackSummary>;
