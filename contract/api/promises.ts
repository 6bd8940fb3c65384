import { z } from "zod";
import { Label } from "../messages.js";
import { count, isoTime, timeParam } from "./common.js";
import { MAX_SERIES_DAYS } from "./fleet.js";

// GET /api/v1/promises: each model's service promises (ISO 10001, docs/promises.md), judged per UTC day, with
// their error budget and burn rate.

export const PROMISE_KINDS = ["availability", "fault_rate", "response"] as const;
export const PromiseKind = z.enum(PROMISE_KINDS);
export type PromiseKind = z.infer<typeof PromiseKind>;

/**
 * met / missed: judged; insufficient: too small a sample to judge; pending: the day (or an issue's
 * deadline) is not over; none: nothing to judge (a response promise on a day without a new issue).
 */
export const DAY_STATES = ["met", "missed", "insufficient", "pending", "none"] as const;
export const DayState = z.enum(DAY_STATES);
export type DayState = z.infer<typeof DayState>;

export const PROMISE_STATUSES = ["ok", "burning", "breached", "insufficient_data"] as const;
export const PromiseStatus = z.enum(PROMISE_STATUSES);
export type PromiseStatus = z.infer<typeof PromiseStatus>;

export const PromiseSample = z
  .object({
    devices: count.optional().meta({ description: "availability: devices counted in the fleet that day" }),
    online: count.optional().meta({ description: "availability: of those, devices that reported that day" }),
    deviceHours: z.number().min(0).optional().meta({ description: "fault_rate: exposure that day" }),
    faults: count.optional().meta({ description: "fault_rate: faults of the severity that day" }),
    issues: count.optional().meta({ description: "response: new issues first seen that day" }),
    late: count.optional().meta({ description: "response: of those, answered late or not at all in time" }),
    waiting: count.optional().meta({ description: "response: of those, not answered yet and not yet due" }),
  })
  .meta({ id: "PromiseSample", description: "What the day's value was computed from" });
export type PromiseSample = z.infer<typeof PromiseSample>;

export const PromiseDay = z
  .object({
    day: isoTime.meta({ description: "Start of the UTC day" }),
    value: z.number().nullable().meta({
      description:
        "availability: share online; fault_rate: faults per 1,000 device-hours; response: share answered in time. null without a sample",
    }),
    target: z.number(),
    met: z.boolean().nullable().meta({ description: "null unless the day was judged (state met or missed)" }),
    state: DayState,
    sample: PromiseSample,
  })
  .meta({ id: "PromiseDay" });
export type PromiseDay = z.infer<typeof PromiseDay>;

const BurnWindow = z.object({
  days: z.number().int().positive(),
  rate: z.number().min(0).nullable().meta({
    description: "(missed ÷ judged days in the window) ÷ (1 − objective); null without a judged day",
  }),
});

export const PromiseReport = z
  .object({
    model: z.string(),
    name: z.string().meta({ examples: ["availability", "fault rate critical", "response critical"] }),
    kind: PromiseKind,
    severity: z.string().nullable().meta({ description: "fault_rate and response: the severity promised" }),
    summary: z.string().meta({ description: "The promise and what it assumes, in words" }),
    target: z.number().meta({
      description:
        "availability: least share online a day; fault_rate: most faults per 1,000 device-hours a day; response: least share of new issues answered in time",
    }),
    objective: z.number().meta({ description: "Share of judged days that must meet the target" }),
    periodDays: z.number().int().positive(),
    period: z.object({ from: isoTime, to: isoTime }).meta({
      description: "The period the budget and compliance are judged over: the complete UTC days before asOf",
    }),
    judgedDays: count.meta({ description: "Days of the period met or missed" }),
    compliance: z.number().nullable().meta({ description: "met ÷ judged days of the period; null if none" }),
    budget: z.object({
      allowedDays: z.number().meta({ description: "(1 − objective) × periodDays" }),
      spentDays: count.meta({ description: "Missed days in the period" }),
      leftDays: z.number().meta({ description: "allowedDays − spentDays; negative when overspent" }),
      leftShare: z.number().nullable().meta({ description: "leftDays ÷ allowedDays" }),
    }),
    burnRate: z.object({
      long: BurnWindow,
      short: BurnWindow,
      fast: z.number().meta({ description: "Both windows at or above this rate: burning fast" }),
    }),
    status: PromiseStatus,
    reason: z.string().meta({ description: "Why the status, in words" }),
    days: z.array(PromiseDay).meta({ description: "One per UTC day the window touches, oldest first" }),
  })
  .meta({ id: "PromiseReport" });
export type PromiseReport = z.infer<typeof PromiseReport>;

export const PromisesAnswer = z
  .object({
    from: isoTime,
    to: isoTime,
    asOf: isoTime.meta({ description: "What the statuses are judged at: the earlier of `to` and now" }),
    file: z.string().nullable().meta({ description: "The promises file read; null when none is configured" }),
    message: z.string().nullable().meta({ description: "Set when nothing is promised, saying how to" }),
    models: z.array(z.object({ model: z.string(), promises: z.array(PromiseReport) })),
  })
  .meta({ id: "PromisesAnswer" });
export type PromisesAnswer = z.infer<typeof PromisesAnswer>;

export const PromisesQuery = z.strictObject({
  from: timeParam(
    `Start of the daily rows, inclusive; default \`to\` minus 30d; at most ${MAX_SERIES_DAYS} days`,
  ),
  to: timeParam("End, exclusive; default now"),
  model: Label.optional().meta({ description: "Only this model's promises" }),
});
export type PromisesQuery = z.infer<typeof PromisesQuery>;

/** A breach or a fast burn now: what the alert engine raises (alerts/). */
export type PromiseAlarm = {
  model: string;
  promise: string;
  kind: PromiseKind;
  state: "breached" | "burning";
  detail: string;
  budgetLeftDays: number;
  burnRate: number | null;
};
