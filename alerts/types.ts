// What the alert engine (alerts/engine.ts, rules in analytics/alerting.ts) hands the delivery side
// (alerts/outbox.ts, alerts/deliver.ts, the targets): notices to send, each to named targets, committed
// durably together with the engine's state. docs/alerts.md documents AlertNotice as the webhook's body.

import { ALERT_SEVERITIES, CONDITION_KINDS, NOTICE_EVENTS } from "../contract/api/alerts.js";

export { ALERT_SEVERITIES, CONDITION_KINDS, NOTICE_EVENTS };
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];
export type NoticeEvent = (typeof NOTICE_EVENTS)[number];
export type ConditionKind = (typeof CONDITION_KINDS)[number];

/** The body every target receives: the webhook's JSON, the MQTT payload. */
export type AlertNotice = {
  /** The alert: one episode of one rule's condition on one subject (raised until resolved). */
  alertId: string;
  /** This notice: alertId/event/sequence; the same notice delivered twice carries the same key. */
  idempotencyKey: string;
  event: NoticeEvent;
  rule: string;
  kind: ConditionKind;
  severity: AlertSeverity;
  /** What it is about, for people ("issue 3f2a91c0 · FQ-Print Mk3 E42", "FQ-Modem 7590 firmware 7.57"). */
  subject: string;
  /** Machine-readable subject: { issue: "…" }, { model: "…", firmware: "…" }, … */
  refs: Record<string, string>;
  title: string;
  /** The evidence behind it (counts, ratios, intervals, windows), as the rule found it. */
  detail: Record<string, unknown>;
  /** Escalation level (0 first) and its name from the rules file. */
  level: number;
  levelName: string;
  raisedAt: string;
  /** When this notice was decided. */
  at: string;
  acknowledged: { by: string; at: string } | null;
  /** The alert's page on the dashboard, when FIELDQ_PUBLIC_URL is set. */
  url: string | null;
};

/** Where notices go: a webhook (JSON POST, HMAC-signed) or an MQTT topic on fieldq's own broker. */
export type TargetSpec =
  | { name: string; type: "webhook"; url: string; secret: string }
  | { name: string; type: "mqtt"; topic: string };

/** One notice for one target. */
export type Delivery = { target: string; notice: AlertNotice };

/**
 * The engine's side of the outbox: what it decided is committed in one fsynced write (its state per
 * condition key and the deliveries), so a kill -9 loses neither and sends nothing twice but at least once.
 */
export interface AlertOutbox<State> {
  /** The engine's state as last committed, by condition key. */
  state(): Promise<Map<string, State>>;
  /** Sets (or with null, forgets) state entries and enqueues deliveries, durably, in one write. */
  commit(change: {
    state: ReadonlyMap<string, State | null>;
    deliveries: readonly Delivery[];
  }): Promise<void>;
}
