import {
  type Acknowledgement,
  type AlertDecision,
  type AlertState,
  stepAlerts,
} from "../analytics/alerting.js";
import type { EscalatedEvent } from "../contract/issue-events.js";
import { iso } from "../contract/time.js";
import type { Logger } from "../observe/logger.js";
import type { ReadServices } from "../services/read-services.js";
import { type AlertPayload, conditionsOf, observe, unobservedKinds } from "./conditions.js";
import type { AlertRules } from "./rules-file.js";
import type { AlertNotice, AlertOutbox, Delivery } from "./types.js";

// One evaluation of the alert rules: observe the conditions (reads only), step every alert (analytics/
// alerting.ts), record escalations of issues in their log, and commit the new state with the notices to the
// outbox in one write (alerts/outbox.ts), which delivery drains (alerts/deliver.ts).

export type EngineState = AlertState<AlertPayload>;

/** The outbox's lane that only logs (alerts/outbox.ts LOG_TARGET): a notice with no target is still logged. */
const LOG_ONLY = "log";

export type AlertEngineDeps = {
  rules: AlertRules;
  outbox: AlertOutbox<EngineState>;
  read: Pick<ReadServices, "issues" | "firmware" | "devices" | "promises">;
  /** The acknowledgements people made (services/alerts.ts), by alert id. */
  acknowledgements: () => Promise<ReadonlyMap<string, Acknowledgement>>;
  /** Writes an issue's "escalated" event (idempotent: the same event lands on the same point). */
  recordEscalation: (issue: string, event: EscalatedEvent) => Promise<void>;
  publicUrl: string | undefined;
  logger: Logger;
  now: () => number;
};

export type Evaluation = { notices: AlertNotice[]; deliveries: Delivery[] };

export type AlertEngine = { evaluate(): Promise<Evaluation> };

export function noticeOf(d: AlertDecision<AlertPayload>, publicUrl: string | undefined): AlertNotice {
  return {
    alertId: d.alertId,
    idempotencyKey: d.idempotencyKey,
    event: d.event,
    rule: d.rule,
    ...d.payload,
    level: d.level,
    levelName: d.levelName,
    raisedAt: iso(d.raisedAt),
    at: iso(d.at),
    acknowledged: d.acknowledged === null ? null : { by: d.acknowledged.by, at: iso(d.acknowledged.at) },
    url: publicUrl === undefined ? null : new URL(`alerts#${d.alertId}`, withSlash(publicUrl)).toString(),
  };
}

const withSlash = (url: string) => (url.endsWith("/") ? url : `${url}/`);

export function createAlertEngine(deps: AlertEngineDeps): AlertEngine {
  const { rules, outbox, logger } = deps;
  const policies = new Map(rules.rules.map((r) => [r.name, r.policy]));
  const ruleNames = new Set(policies.keys());

  return {
    async evaluate() {
      const now = deps.now();
      const observations = await observe(deps.read, rules.rules, now, (source, err) =>
        logger.warn({ err, source }, "alert conditions: a source failed; its alerts stay as they are"),
      );
      const unobserved = unobservedKinds(rules.rules, observations);
      const all = await outbox.state();
      // Alerts whose source failed now are left out of the step: a failed read is not a cleared condition.
      const previous = new Map(
        [...all].filter(([, s]) => !(ruleNames.has(s.rule) && unobserved.has(s.payload.kind))),
      );
      const acknowledgements = await deps.acknowledgements().catch((err: unknown) => {
        logger.warn({ err }, "alert acknowledgements unreadable: judged as none this time");
        return new Map<string, Acknowledgement>();
      });
      const { changes, decisions } = stepAlerts({
        previous,
        observed: conditionsOf(rules.rules, observations),
        acknowledgements,
        policies,
        now,
      });
      for (const d of decisions) {
        const issue = d.payload.refs.issue;
        if (d.event !== "escalated" || issue === undefined) continue;
        // Before the commit: an escalation recorded twice lands on one point; one never recorded is lost.
        await deps
          .recordEscalation(issue, {
            type: "escalated",
            level: d.level,
            levelName: d.levelName,
            alertId: d.alertId,
            rule: d.rule,
            at: d.at,
            actor: "system",
          })
          .catch((err: unknown) => logger.warn({ err, issue }, "the issue's escalation was not recorded"));
      }
      const decided = decisions.map((d) => ({ d, notice: noticeOf(d, deps.publicUrl) }));
      const notices = decided.map(({ notice }) => notice);
      const deliveries = decided.flatMap(({ d, notice }) =>
        (d.targets.length > 0 ? d.targets : [LOG_ONLY]).map((target) => ({ target, notice })),
      );
      if (changes.size > 0 || deliveries.length > 0) await outbox.commit({ state: changes, deliveries });
      for (const n of notices) {
        logger.info({ alertId: n.alertId, event: n.event, rule: n.rule, subject: n.subject }, "alert");
      }
      return { notices, deliveries };
    },
  };
}
