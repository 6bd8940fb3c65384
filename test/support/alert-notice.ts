import type { AlertNotice } from "../../alerts/types.js";

/** A notice as the engine would hand it over: sequence n of an alert raised on an issue. */
export function sampleNotice(overrides: Partial<AlertNotice> & { sequence?: number } = {}): AlertNotice {
  const { sequence = 1, ...rest } = overrides;
  const alertId = rest.alertId ?? "issue_new~3f2a91c0~1767225600000";
  const event = rest.event ?? "raised";
  return {
    alertId,
    idempotencyKey: `${alertId}/${event}/${sequence}`,
    event,
    rule: "new-critical-issue",
    kind: "issue_new",
    severity: "critical",
    subject: "issue 3f2a91c0 · FQ-Print Mk3 E42",
    refs: { issue: "3f2a91c0" },
    title: "New critical issue on 12 devices",
    detail: { affectedDevices: 12, fleetShare: 0.04 },
    level: 0,
    levelName: "on call",
    raisedAt: "2026-01-01T00:00:00.000Z",
    at: "2026-01-01T00:00:00.000Z",
    acknowledged: null,
    url: null,
    ...rest,
  };
}
