import { createHash } from "node:crypto";

// The alert rules as one pure step (docs/alert-rules.md): the engine's state per condition key, the conditions
// observed now, the acknowledgements and the clock in; the new state and the notices to send out.
//
// - One alert per state change: a condition that appears raises an alert (one "raised" notice); it stays that
//   alert while the condition holds, and is "resolved" once, when the condition has been absent for `holdMs`.
// - Flapping suppressed: a condition that clears and returns within `holdMs` is the same alert, not a new one;
//   nothing is sent for the gap (the rule: an alert resolves only after holdMs without its condition).
// - Repeats while unacknowledged: every `repeatMs` since the alert's last notice, "repeated" to its current
//   level's targets. An acknowledged alert repeats no more and escalates no more.
// - Escalation (ISO 10003): levels in order; an unacknowledged alert that has spent its level's `afterMs` at
//   that level moves up one ("escalated", to the new level's targets). The last level (or one without
//   afterMs) stays. While a condition is cleared and waiting out its hold, it neither repeats nor escalates.
// - A resolution goes to the targets of every level the alert reached: whoever was told hears it is over.
// - One notice per alert per step at most; each notice's idempotency key is alertId/event/sequence.
// The payload P (kind, severity, subject, refs, title, detail) is carried through untouched: the latest
// observation's, so a growing issue's counts are current in each notice.

export type AlertLevel = {
  name: string;
  /** Time at this level, unacknowledged, before moving up one; null: the top. */
  afterMs: number | null;
  targets: readonly string[];
};

/** What the step needs of a rule. */
export type AlertPolicy = {
  name: string;
  levels: readonly AlertLevel[];
  /** Time between notices of an unacknowledged alert; null: no repeats. */
  repeatMs: number | null;
  /** How long a condition must stay away before its alert resolves (and within which it returns as itself). */
  holdMs: number;
};

/** One condition observed now: a rule's condition on one subject, under a key stable across steps. */
export type ObservedCondition<P> = { key: string; rule: string; payload: P };

export type Acknowledgement = { by: string; at: number };

/** What the engine keeps per condition key between steps (JSON, committed with the notices). */
export type AlertState<P> = {
  alertId: string;
  rule: string;
  payload: P;
  raisedAt: number;
  level: number;
  levelSince: number;
  /** Notices sent so far; the last one's sequence. */
  sequence: number;
  lastNoticeAt: number;
  /** Since when the condition has been absent; null while it holds. */
  clearedAt: number | null;
  acknowledged: Acknowledgement | null;
};

export type AlertEvent = "raised" | "repeated" | "escalated" | "resolved";

export type AlertDecision<P> = {
  alertId: string;
  event: AlertEvent;
  sequence: number;
  idempotencyKey: string;
  rule: string;
  payload: P;
  level: number;
  levelName: string;
  raisedAt: number;
  at: number;
  acknowledged: Acknowledgement | null;
  targets: string[];
};

export type AlertStepInput<P> = {
  previous: ReadonlyMap<string, AlertState<P>>;
  observed: readonly ObservedCondition<P>[];
  acknowledgements: ReadonlyMap<string, Acknowledgement>;
  policies: ReadonlyMap<string, AlertPolicy>;
  now: number;
};

export type AlertStepResult<P> = {
  /** Changed entries only: the new state, or null to forget the key. */
  changes: Map<string, AlertState<P> | null>;
  decisions: AlertDecision<P>[];
};

/** An alert's id: one per episode of one condition (its key and the instant it was raised). */
export const alertIdOf = (key: string, raisedAt: number): string =>
  createHash("sha256").update(`${key}\n${raisedAt}`).digest("base64url").slice(0, 16);

export const idempotencyKeyOf = (alertId: string, event: AlertEvent, sequence: number) =>
  `${alertId}/${event}/${sequence}`;

const levelOf = (policy: AlertPolicy | undefined, level: number): AlertLevel =>
  policy?.levels[Math.min(level, Math.max(0, (policy?.levels.length ?? 1) - 1))] ?? {
    name: "default",
    afterMs: null,
    targets: [],
  };

/** The targets of levels 0..level, each once, in level order. */
export function targetsUpTo(policy: AlertPolicy | undefined, level: number): string[] {
  const seen = new Set<string>();
  for (let i = 0; i <= level; i++) for (const t of policy?.levels[i]?.targets ?? []) seen.add(t);
  return [...seen];
}

function decide<P>(
  state: AlertState<P>,
  event: AlertEvent,
  policy: AlertPolicy | undefined,
  now: number,
  targets: string[],
): AlertDecision<P> {
  return {
    alertId: state.alertId,
    event,
    sequence: state.sequence,
    idempotencyKey: idempotencyKeyOf(state.alertId, event, state.sequence),
    rule: state.rule,
    payload: state.payload,
    level: state.level,
    levelName: levelOf(policy, state.level).name,
    raisedAt: state.raisedAt,
    at: now,
    acknowledged: state.acknowledged,
    targets,
  };
}

/** One step of every alert: see the rules at the top of this file. */
export function stepAlerts<P>(input: AlertStepInput<P>): AlertStepResult<P> {
  const { previous, policies, now } = input;
  const changes = new Map<string, AlertState<P> | null>();
  const decisions: AlertDecision<P>[] = [];
  const observed = new Map(input.observed.map((c) => [c.key, c]));

  for (const [key, condition] of observed) {
    const policy = policies.get(condition.rule);
    const before = previous.get(key);
    if (before === undefined) {
      const raised: AlertState<P> = {
        alertId: alertIdOf(key, now),
        rule: condition.rule,
        payload: condition.payload,
        raisedAt: now,
        level: 0,
        levelSince: now,
        sequence: 1,
        lastNoticeAt: now,
        clearedAt: null,
        acknowledged: null,
      };
      changes.set(key, raised);
      decisions.push(decide(raised, "raised", policy, now, [...levelOf(policy, 0).targets]));
      continue;
    }
    const acknowledged = before.acknowledged ?? input.acknowledgements.get(before.alertId) ?? null;
    let next: AlertState<P> = { ...before, payload: condition.payload, clearedAt: null, acknowledged };
    if (acknowledged === null) {
      const level = levelOf(policy, before.level);
      const top = policy === undefined || before.level >= policy.levels.length - 1;
      if (!top && level.afterMs !== null && now - before.levelSince >= level.afterMs) {
        next = {
          ...next,
          level: before.level + 1,
          levelSince: now,
          sequence: before.sequence + 1,
          lastNoticeAt: now,
        };
        decisions.push(decide(next, "escalated", policy, now, [...levelOf(policy, next.level).targets]));
      } else if (policy?.repeatMs != null && now - before.lastNoticeAt >= policy.repeatMs) {
        next = { ...next, sequence: before.sequence + 1, lastNoticeAt: now };
        decisions.push(decide(next, "repeated", policy, now, [...level.targets]));
      }
    }
    if (!sameState(before, next)) changes.set(key, next);
  }

  for (const [key, before] of previous) {
    if (observed.has(key)) continue;
    const policy = policies.get(before.rule);
    const acknowledged = before.acknowledged ?? input.acknowledgements.get(before.alertId) ?? null;
    const clearedAt = before.clearedAt ?? now;
    // A rule removed from the file resolves its alerts at once: nothing will observe them again.
    const holdMs = policy?.holdMs ?? 0;
    if (now - clearedAt >= holdMs) {
      const resolved = { ...before, acknowledged, sequence: before.sequence + 1, lastNoticeAt: now };
      changes.set(key, null);
      decisions.push(decide(resolved, "resolved", policy, now, targetsUpTo(policy, before.level)));
    } else {
      const next = { ...before, acknowledged, clearedAt };
      if (!sameState(before, next)) changes.set(key, next);
    }
  }
  return { changes, decisions };
}

function sameState<P>(a: AlertState<P>, b: AlertState<P>): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}
