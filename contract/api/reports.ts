import { z } from "zod";
import { IssueStatus } from "../issue-events.js";
import { Severity } from "../messages.js";
import { count, isoTime, timeParam } from "./common.js";
import { FeedbackBesideFaults, FeedbackCategory } from "./feedback.js";
import { MAX_SERIES_DAYS } from "./fleet.js";

// The management review (ISO 9001 §9.3): what GET /api/v1/reports/review and `fieldq report` answer. Every
// section carries its window and its sample size.

/** An action (an acknowledged, investigated, regressed or assigned issue) without progress this long is overdue. */
export const OVERDUE_AFTER_DAYS = 14;

/** The tables a review exports as CSV, in the order the report shows them. */
export const REVIEW_TABLES = ["pareto", "promises", "issues", "overdue", "firmware", "feedback"] as const;
export const ReviewTable = z.enum(REVIEW_TABLES);
export type ReviewTable = z.infer<typeof ReviewTable>;

export const REVIEW_FORMATS = ["html", "csv", "json"] as const;

export const ReviewQuery = z
  .strictObject({
    from: timeParam(
      `Start, inclusive; default \`to\` minus 30d; at most ${MAX_SERIES_DAYS} days before \`to\``,
    ),
    to: timeParam("End, exclusive; default now"),
    format: z
      .enum(REVIEW_FORMATS)
      .default("html")
      .meta({ description: "html: the printable report; csv: one table (needs table); json: the data" }),
    table: ReviewTable.optional().meta({ description: "With format=csv: the table to export" }),
  })
  .superRefine((q, ctx) => {
    if (q.format === "csv" && q.table === undefined) {
      ctx.addIssue({ code: "custom", path: ["table"], message: `is required with format=csv` });
    }
    if (q.format !== "csv" && q.table !== undefined) {
      ctx.addIssue({ code: "custom", path: ["table"], message: "belongs to format=csv only" });
    }
  });
export type ReviewQuery = z.infer<typeof ReviewQuery>;

export const ParetoRow = z.object({
  rank: z.number().int().min(1),
  issue: z.string(),
  key: z.string(),
  status: IssueStatus,
  worstSeverity: Severity.nullable(),
  occurrences: count,
  affectedDevices: count,
  share: z.number().meta({ description: "occurrences / all occurrences of the window" }),
  cumulativeShare: z.number(),
  vitalFew: z.boolean().meta({
    description:
      "Within the fewest issues that give 80% of the occurrences (the first to reach 80% included)",
  }),
});
export type ParetoRow = z.infer<typeof ParetoRow>;

export const Pareto = z.object({
  issues: count.meta({ description: "Issues with an occurrence in the window" }),
  occurrences: count.meta({ description: "Their occurrences: the sample size of every share" }),
  rows: z.array(ParetoRow),
});
export type Pareto = z.infer<typeof Pareto>;

export const PromiseRow = z.object({
  model: z.string(),
  promise: z.string().meta({ description: "What was promised, in words" }),
  target: z.string(),
  actual: z.string().nullable(),
  compliant: z.boolean().nullable().meta({ description: "null when there was nothing to judge" }),
  budgetLeft: z.number().nullable().meta({ description: "Share of the error budget left, 0-1" }),
  sample: z.string().meta({ description: "What the figure was computed over (days, devices, issues)" }),
});
export type PromiseRow = z.infer<typeof PromiseRow>;

export const PromiseSection = z.object({
  available: z.boolean(),
  note: z.string().nullable().meta({ description: "Why nothing is shown, when nothing is" }),
  rows: z.array(PromiseRow),
});
export type PromiseSection = z.infer<typeof PromiseSection>;

export const ISSUE_FLOW_EVENTS = ["opened", "closed", "verified_effective", "reopened"] as const;
export const IssueFlowEvent = z.enum(ISSUE_FLOW_EVENTS);
export type IssueFlowEvent = z.infer<typeof IssueFlowEvent>;

export const IssueFlowRow = z.object({
  issue: z.string(),
  key: z.string(),
  event: IssueFlowEvent,
  at: isoTime,
  actor: z.string(),
  detail: z.string().nullable(),
});
export type IssueFlowRow = z.infer<typeof IssueFlowRow>;

export const IssueFlow = z.object({
  opened: count.meta({ description: "Issues whose first occurrence ever falls in the window" }),
  closed: count.meta({ description: "Closings in the window (by hand or by the field)" }),
  verifiedEffective: count.meta({
    description: "Closings in the window after the fix ran its required device-hours without a recurrence",
  }),
  reopened: count.meta({ description: "Regressions and reopenings in the window" }),
  rows: z.array(IssueFlowRow).meta({ description: "Each of them, in time order" }),
});
export type IssueFlow = z.infer<typeof IssueFlow>;

export const OverdueRow = z.object({
  issue: z.string(),
  key: z.string(),
  status: IssueStatus,
  assignee: z.string().nullable(),
  since: isoTime.meta({
    description: "The last progress: the status change, or the assignment of a new issue",
  }),
  daysWithoutProgress: z.number(),
});
export type OverdueRow = z.infer<typeof OverdueRow>;

export const Overdue = z.object({
  limitDays: z.number().meta({ description: `OVERDUE_AFTER_DAYS (${OVERDUE_AFTER_DAYS})` }),
  asOf: isoTime.meta({ description: "The window's end: the log is replayed up to it" }),
  openActions: count.meta({
    description:
      "Issues acknowledged, investigating or regressed, or new and assigned, at the window's end: the sample",
  }),
  rows: z.array(OverdueRow),
});
export type Overdue = z.infer<typeof Overdue>;

export const FirmwareVerdictRow = z.object({
  model: z.string().nullable(),
  kind: z.string(),
  subject: z.string().meta({ description: "firmware 3.2 vs predecessor, isp Acme, …" }),
  verdict: z.enum(["regression", "improvement"]),
  firstReached: isoTime,
  evidenceFrom: isoTime,
  evidenceTo: isoTime,
  rateRatio: z.number().nullable(),
  ciLower: z.number().nullable(),
  ciUpper: z.number().nullable(),
  candidatePer1000h: z.number(),
  baselinePer1000h: z.number(),
  candidateDevices: count,
  baselineDevices: count,
  candidateHours: z.number(),
  baselineHours: z.number(),
});
export type FirmwareVerdictRow = z.infer<typeof FirmwareVerdictRow>;

export const FeedbackText = z.object({
  at: isoTime,
  device: z.string(),
  model: z.string(),
  firmware: z.string(),
  category: FeedbackCategory,
  rating: z.number().int().nullable(),
  text: z.string(),
});

export const ReviewReport = z
  .object({
    from: isoTime.meta({ description: "The window used: `from` floored to the UTC hour" }),
    to: isoTime.meta({ description: "End (exclusive): `to` raised to the next UTC hour" }),
    generatedAt: isoTime,
    pareto: Pareto,
    promises: PromiseSection,
    issues: IssueFlow,
    overdue: Overdue,
    firmware: z.object({
      note: z.string(),
      rows: z.array(FirmwareVerdictRow),
    }),
    feedback: z.object({
      records: count.meta({ description: "Support-desk records in the window" }),
      groups: z.array(FeedbackBesideFaults),
      latest: z.array(FeedbackText).meta({ description: "The newest records' words (at most 50)" }),
    }),
  })
  .meta({ id: "ReviewReport" });
export type ReviewReport = z.infer<typeof ReviewReport>;
