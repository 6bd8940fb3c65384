import { z } from "zod";
import { Label } from "./messages.js";

// The issue event log's format: what analytics/lifecycle.ts folds, what "long"."issue_event" stores (as JSON)
// and what the API serves as an issue's history. Every decision is an event with who (actor), when (at,
// epoch ms) and why (reason, or the evidence for system events).

export const ISSUE_STATUSES = [
  "new",
  "acknowledged",
  "investigating",
  "fix_released",
  "verifying",
  "closed",
  "muted",
  "regressed",
] as const;
export const IssueStatus = z.enum(ISSUE_STATUSES);
export type IssueStatus = z.infer<typeof IssueStatus>;

/** Statuses a person can ask for; "new" and "regressed" only happen. */
export const TransitionTarget = IssueStatus.exclude(["new", "regressed"]);
export type TransitionTarget = z.infer<typeof TransitionTarget>;

const Actor = z.string().trim().min(1).max(128);
const At = z.number().int().min(0);
const Reason = z.string().trim().min(1).max(2000);
const System = z.literal("system");

export const TransitionEvent = z
  .strictObject({
    type: z.literal("transition"),
    to: TransitionTarget,
    actor: Actor,
    at: At,
    reason: Reason.optional(),
    fixVersion: Label.optional(),
  })
  .superRefine((event, ctx) => {
    if (event.to === "fix_released" && event.fixVersion === undefined) {
      ctx.addIssue({ code: "custom", path: ["fixVersion"], message: "is required when to is fix_released" });
    }
    if (event.to !== "fix_released" && event.fixVersion !== undefined) {
      ctx.addIssue({ code: "custom", path: ["fixVersion"], message: "belongs to fix_released only" });
    }
  });
export type TransitionEvent = z.infer<typeof TransitionEvent>;

export const AssignEvent = z.strictObject({
  type: z.literal("assign"),
  assignee: Actor.nullable(),
  actor: Actor,
  at: At,
});
export const NoteEvent = z.strictObject({
  type: z.literal("note"),
  text: z.string().trim().min(1).max(10_000),
  actor: Actor,
  at: At,
});
export const MergeEvent = z.strictObject({
  type: z.literal("merge"),
  into: z.string().min(1).max(128),
  actor: Actor,
  at: At,
  reason: Reason.optional(),
});
export const RegressionEvent = z.strictObject({
  type: z.literal("regression"),
  firmware: Label,
  at: At,
  actor: System,
});
export const AutoCloseEvent = z.strictObject({
  type: z.literal("auto_close"),
  exposureHours: z.number().min(0),
  requiredHours: z.number().min(0),
  at: At,
  actor: System,
});
export const FirstSeenEvent = z.strictObject({
  type: z.literal("first_seen"),
  firmware: Label.optional(),
  at: At,
  actor: System,
});
/** An alert about the issue moved up an escalation level (alerts/engine.ts): recorded, no state change. */
export const EscalatedEvent = z.strictObject({
  type: z.literal("escalated"),
  level: z.number().int().min(1).max(100),
  levelName: z.string().min(1).max(64),
  alertId: z.string().min(1).max(64),
  rule: z.string().min(1).max(64),
  at: At,
  actor: System,
});
export type AssignEvent = z.infer<typeof AssignEvent>;
export type NoteEvent = z.infer<typeof NoteEvent>;
export type MergeEvent = z.infer<typeof MergeEvent>;
export type RegressionEvent = z.infer<typeof RegressionEvent>;
export type AutoCloseEvent = z.infer<typeof AutoCloseEvent>;
export type FirstSeenEvent = z.infer<typeof FirstSeenEvent>;
export type EscalatedEvent = z.infer<typeof EscalatedEvent>;

export const IssueEvent = z.discriminatedUnion("type", [
  TransitionEvent,
  AssignEvent,
  NoteEvent,
  MergeEvent,
  RegressionEvent,
  AutoCloseEvent,
  FirstSeenEvent,
  EscalatedEvent,
]);
export type IssueEvent = z.infer<typeof IssueEvent>;
