import { z } from "zod";
import { isoTime, pageOf, paging } from "./common.js";

// Alerts: the notice every target receives (the webhook's body, the MQTT payload), and the alerts API.
// alerts/types.ts AlertNotice is the engine's view of the same notice; alerts/webhook.ts checks they agree.

export const ALERT_STATUSES = ["open", "acknowledged", "resolved"] as const;
export const AlertStatus = z.enum(ALERT_STATUSES);
export type AlertStatus = z.infer<typeof AlertStatus>;

export const ALERT_SEVERITIES = ["info", "warning", "critical"] as const;
export const AlertSeverityName = z.enum(ALERT_SEVERITIES);

/** What a notice says happened to its alert. */
export const NOTICE_EVENTS = ["raised", "repeated", "escalated", "resolved"] as const;

/** The conditions fieldq alerts on (a rule in the rules file names one). */
export const CONDITION_KINDS = [
  "issue_new",
  "issue_regressed",
  "firmware_regression",
  "silent_share",
  "promise_breached",
  "error_budget_burn",
] as const;

export const AlertId = z
  .string()
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  .regex(/^[^/\u0000-\u001f\u007f]{1,200}$/, "must be 1-200 characters, no slash or control character");

export const Acknowledgement = z.object({ by: z.string(), at: isoTime });

export const AlertNoticeBody = z
  .object({
    alertId: z.string(),
    idempotencyKey: z.string().meta({ description: "alertId/event/sequence: the same on every redelivery" }),
    event: z.enum(NOTICE_EVENTS),
    rule: z.string(),
    kind: z.enum(CONDITION_KINDS),
    severity: AlertSeverityName,
    subject: z.string(),
    refs: z.record(z.string(), z.string()),
    title: z.string(),
    detail: z.record(z.string(), z.unknown()),
    level: z.number().int().min(0),
    levelName: z.string(),
    raisedAt: isoTime,
    at: isoTime,
    acknowledged: Acknowledgement.nullable(),
    url: z.string().nullable(),
  })
  .meta({ id: "AlertNotice" });
export type AlertNoticeBody = z.infer<typeof AlertNoticeBody>;

/** What happened to one delivery attempt. */
export const DELIVERY_OUTCOMES = ["delivered", "failed", "rejected", "gave_up"] as const;
export const DeliveryOutcome = z.enum(DELIVERY_OUTCOMES);
export type DeliveryOutcome = z.infer<typeof DeliveryOutcome>;

export const TargetDelivery = z
  .object({
    target: z.string(),
    state: z.enum(["pending", "delivered", "failing", "rejected", "gave_up"]).meta({
      description:
        "pending: not tried yet; failing: tried, will be tried again at nextTry; rejected: the receiver " +
        "refused it for good (a 4xx other than 408 and 429); gave_up: still failing 24 h after it was queued",
    }),
    deliveredAt: isoTime.nullable(),
    attempts: z.number().int().min(0),
    lastError: z.string().nullable(),
    lastStatus: z.number().int().nullable(),
    nextTry: isoTime.nullable(),
  })
  .meta({ id: "AlertTargetDelivery" });
export type TargetDelivery = z.infer<typeof TargetDelivery>;

export const AlertSummary = z
  .object({
    id: z.string(),
    status: AlertStatus,
    rule: z.string(),
    kind: z.string(),
    severity: AlertSeverityName,
    subject: z.string(),
    refs: z.record(z.string(), z.string()),
    title: z.string(),
    level: z.number().int().min(0),
    levelName: z.string(),
    raisedAt: isoTime,
    updatedAt: isoTime.meta({ description: "When its latest notice was decided" }),
    acknowledged: Acknowledgement.extend({ note: z.string().nullable() }).nullable(),
    latest: AlertNoticeBody,
    deliveries: z.array(TargetDelivery).meta({ description: "The latest notice's delivery, per target" }),
  })
  .meta({ id: "AlertSummary" });
export type AlertSummary = z.infer<typeof AlertSummary>;

export const AlertHistoryEntry = z.discriminatedUnion("type", [
  z.object({ type: z.literal("notice"), at: isoTime, notice: AlertNoticeBody, targets: z.array(z.string()) }),
  z.object({
    type: z.literal("delivery"),
    at: isoTime,
    idempotencyKey: z.string(),
    target: z.string(),
    outcome: DeliveryOutcome,
    attempt: z.number().int().min(1),
    status: z.number().int().nullable(),
    error: z.string().nullable(),
    nextTry: isoTime.nullable(),
  }),
  z.object({ type: z.literal("acknowledged"), at: isoTime, by: z.string(), note: z.string().nullable() }),
]);
export type AlertHistoryEntry = z.infer<typeof AlertHistoryEntry>;

export const AlertDetail = AlertSummary.extend({
  history: z
    .array(AlertHistoryEntry)
    .meta({ description: "Every notice, attempt and acknowledgement, oldest first" }),
}).meta({ id: "AlertDetail" });
export type AlertDetail = z.infer<typeof AlertDetail>;

export const AlertListQuery = z.strictObject({
  status: AlertStatus.optional(),
  severity: AlertSeverityName.optional(),
  rule: z.string().min(1).max(200).optional(),
  ...paging,
});
export type AlertListQuery = z.infer<typeof AlertListQuery>;

export const AlertPage = z.object(pageOf(AlertSummary)).meta({ id: "AlertPage" });
export type AlertPage = z.infer<typeof AlertPage>;

export const AlertIdParam = z.object({
  id: AlertId.meta({ param: { name: "id", in: "path" }, example: "issue_new~3f2a91c0~1767225600000" }),
});

export const AcknowledgeBody = z.strictObject({
  note: z.string().trim().max(2000).optional().meta({ description: "Why, what is being done" }),
});

export const AcknowledgeAnswer = z.object({ alert: AlertSummary }).meta({ id: "AlertAcknowledged" });
