import type { AutoCloseEvent, RegressionEvent, TransitionEvent } from "../contract/issue-events.js";
import { HOUR_MS } from "../contract/time.js";
import { applyEvent, checkVerification, type IssueState, onOccurrence, reliesOnFix } from "./lifecycle.js";
import { isAtLeast } from "./versions.js";

// What the field data says about a released fix, as the events to append: a fault on firmware at or above
// fixVersion since fixReleasedAt is a regression; device-hours on such firmware move fix_released to
// verifying and, once they reach the required hours, close the issue as effective.
//
// Every event's time is a function of the data and the log alone, never of the clock: two runners that see
// the same data compute the same event at the same time, and storage writes it at the same point
// (docs/storage.md, issue_event), so the log holds it once. An event is dated when the data made it true
// (the recurrence's time, the end of the hour the hours were reached in), and never before the latest
// event, so replaying the log keeps it last.

export type SystemEvent = RegressionEvent | TransitionEvent | AutoCloseEvent;

/** The first fault since the fix on one firmware (any firmware: the rule picks those at or above the fix). */
export type Recurrence = { firmware: string; at: number };

/** Device-hours of the issue's models on one firmware in the UTC hour starting at hourMs. */
export type HourExposure = { hourMs: number; firmware: string; hours: number };

export type SettleInput = {
  /** The issue's own state, replayed from its log. */
  state: IssueState;
  recurrences: readonly Recurrence[];
  exposure: readonly HourExposure[];
  requiredHours: number;
  /**
   * Hours ending after this are still filling and do not count yet, so an event is never dated in the
   * future of a person acting meanwhile. Decides whether an event happens, never its time.
   */
  completeBeforeMs: number;
};

export type Settled = { events: SystemEvent[]; state: IssueState };

/** The hour ends at which the fix's exposure first was positive and first reached the required hours. */
function exposureMarks(input: SettleInput, fixVersion: string, since: number) {
  const perHour = new Map<number, number>();
  for (const e of input.exposure) {
    if (e.hourMs < since || e.hourMs + HOUR_MS > input.completeBeforeMs) continue;
    if (!(e.hours > 0) || !isAtLeast(e.firmware, fixVersion)) continue;
    perHour.set(e.hourMs, (perHour.get(e.hourMs) ?? 0) + e.hours);
  }
  let total = 0;
  let first: { endMs: number; hours: number } | undefined;
  let reached: { endMs: number; hours: number } | undefined;
  for (const [hourMs, hours] of [...perHour].sort((a, b) => a[0] - b[0])) {
    total += hours;
    first ??= { endMs: hourMs + HOUR_MS, hours: total };
    if (total >= input.requiredHours) {
      reached = { endMs: hourMs + HOUR_MS, hours: total };
      break;
    }
  }
  return { first, reached };
}

/** The events that settle the issue now, in order, and the state after them. */
export function settle(input: SettleInput): Settled {
  let state = input.state;
  const events: SystemEvent[] = [];
  const { fixVersion, fixReleasedAt } = state;
  if (state.mergedInto !== null || fixVersion === null || fixReleasedAt === null) return { events, state };

  const recurrence = input.recurrences
    .filter((r) => r.at >= fixReleasedAt && isAtLeast(r.firmware, fixVersion))
    .sort((a, b) => a.at - b.at || (a.firmware < b.firmware ? -1 : a.firmware > b.firmware ? 1 : 0))[0];
  const { first, reached } = exposureMarks(input, fixVersion, fixReleasedAt);
  const after = (ms: number) => Math.max(ms, (state.updatedAt ?? 0) + 1);

  // At most verifying, closed, then regressed: each step leaves a state the next one starts from.
  for (let step = 0; step < 3 && reliesOnFix(state); step++) {
    const mark = state.status === "fix_released" ? first : state.status === "verifying" ? reached : undefined;
    let event: SystemEvent | undefined;
    // A recurrence before the hours were reached means the fix did not hold: it regresses instead.
    if (recurrence !== undefined && (mark === undefined || recurrence.at < mark.endMs)) {
      event = onOccurrence(state, { firmware: recurrence.firmware, at: after(recurrence.at) });
    } else if (mark !== undefined) {
      event = checkVerification(state, {
        exposureHoursOnFix: mark.hours,
        at: after(mark.endMs),
        requiredHours: input.requiredHours,
      });
    }
    if (event === undefined) break;
    events.push(event);
    state = applyEvent(state, event);
  }
  return { events, state };
}
